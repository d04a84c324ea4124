/**
 * The heartbeat's judgement of a peer that is alive but slow to answer: a
 * loaded machine or a busy connection makes pings take longer than one
 * interval, and closing the connection then cuts the work on it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { testNodes } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import type { Stream } from '@libp2p/interface'

const nodes = testNodes()
afterEach(async () => { await nodes.cleanup() })

const PING = '/ipfs/ping/1.0.0'

describe('heartbeat', () => {
  it('keeps a peer whose every answer comes later than one beat but within the budget', async () => {
    const beat = { intervalMs: 500, maxMissed: 4 }
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: beat })
    const slow = await nodes.start({ nodeId: 'slow', heartbeat: beat, peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    const peer = slow.node.swarm.peerId
    await waitFor('hub to be connected to slow', () => hub.node.swarm.getConnections(peer).length > 0)

    // slow echoes each ping two beats late: past one interval, well within four.
    const answerAfterMs = 2 * beat.intervalMs
    await slow.node.swarm.unhandle(PING)
    await slow.node.swarm.handle(PING, async (stream: Stream) => {
      for await (const chunk of stream) {
        await new Promise(resolve => setTimeout(resolve, answerAfterMs))
        if (stream.status !== 'open') return
        stream.send(chunk)
      }
      await stream.close()
    }, { runOnLimitedConnection: true })

    let unresponsive = false
    hub.node.heartbeat.addEventListener('peer:unresponsive', event => { if (event.detail.equals(peer)) unresponsive = true })
    // Three late answers taken in a row, each at least one interval after its ping (or hub gave slow up).
    const seen = new Set<number>()
    await waitFor('hub to take three late answers from slow', () => {
      const liveness = hub.node.heartbeat.get(peer)
      if (liveness?.lastSeen != null && (liveness.rttMs ?? 0) >= answerAfterMs) seen.add(liveness.lastSeen)
      return unresponsive || seen.size >= 3
    }, { timeoutMs: 30_000 })
    expect(unresponsive).toBe(false)
    expect(hub.node.swarm.getConnections(peer).length).toBeGreaterThan(0)
  })
})
