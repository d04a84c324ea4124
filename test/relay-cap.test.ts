/**
 * The per-member cap on relayed bytes (`limits.relayedBytesPerMemberPerMinute`):
 * a member that sends more than it through the relay in a minute has its
 * circuit cut, with a log line and a metric; another member sending through
 * the same relay to the same node at the same time is not touched, and the
 * member over its cap keeps its own connection to the relay.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import type { Stream } from '@libp2p/interface'

const nodes = testNodes()
afterEach(async () => { await nodes.cleanup() })

const SINK = '/clawmatrix-test/sink/1.0.0'
const CAP = 256 * 1024
const KiB = 1024

/** The sink counts what arrives on each stream and answers the count when the sender closes. */
async function serveSink (node: TestNode): Promise<void> {
  await node.node.swarm.handle(SINK, async stream => {
    let received = 0
    for await (const chunk of stream) received += chunk.byteLength
    stream.send(new TextEncoder().encode(String(received)))
    await stream.close()
  }, { runOnLimitedConnection: true })
}

/** Sends `bytes` through a relayed stream to `to`; resolves with the count the sink answered. */
async function sendThrough (from: TestNode, to: TestNode, bytes: number): Promise<number> {
  const stream: Stream = await from.node.swarm.dialProtocol(to.node.peerId, SINK, { runOnLimitedConnection: true })
  const chunk = new Uint8Array(16 * KiB)
  for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
    if (stream.status !== 'open') throw new Error(`the stream was ${stream.status} after ${sent} bytes`)
    if (!stream.send(chunk)) {
      await new Promise<void>((resolve, reject) => {
        stream.addEventListener('drain', () => { resolve() }, { once: true })
        stream.addEventListener('close', () => { reject(new Error(`the stream closed after ${sent} bytes`)) }, { once: true })
      })
    }
  }
  await stream.close()
  let answer = ''
  for await (const piece of stream) answer += new TextDecoder().decode(piece.subarray())
  if (answer === '') throw new Error('the stream ended without an answer')
  return Number(answer)
}

describe('relayed bytes per member', { timeout: 120_000 }, () => {
  it('a member over limits.relayedBytesPerMemberPerMinute is cut; another member through the same relay is not', async () => {
    const relay = await nodes.start({ nodeId: 'relay', listen: true, limits: { relayedBytesPerMemberPerMinute: CAP } })
    const peers = [{ nodeId: 'relay', url: relay.wsAddress() }]
    const sink = await nodes.start({ nodeId: 'sink', peers })
    const greedy = await nodes.start({ nodeId: 'greedy', peers })
    const modest = await nodes.start({ nodeId: 'modest', peers })
    await serveSink(sink)
    for (const sender of [greedy, modest]) {
      await waitFor(`${sender.node.config.nodeId} to know a circuit to the sink`, () =>
        sender.node.view.card(sink.node.peerId.toString())?.addresses.some(a => a.includes('/p2p-circuit')))
    }

    // Under the cap, both get through whole.
    expect(await sendThrough(modest, sink, 64 * KiB)).toBe(64 * KiB)
    expect(await sendThrough(greedy, sink, 64 * KiB)).toBe(64 * KiB)
    // Over it, the greedy member's circuit is cut; the modest one's goes on, in the same minute.
    await expect(sendThrough(greedy, sink, 4 * CAP)).rejects.toThrow(/closed|reset|abort|ended/i)
    expect(await sendThrough(modest, sink, 64 * KiB)).toBe(64 * KiB)

    expect(relay.log.has(/greedy \(\w+\) sent \d+ bytes through this relay within a minute, over limits\.relayedBytesPerMemberPerMinute \(262144\): its circuits are cut/)).toBe(true)
    expect(relay.log.has(/modest \(\w+\) sent/)).toBe(false)
    const metrics = await (await fetch(`${relay.node.http.url}/metrics`)).text()
    expect(Number(metrics.match(/^clawmatrix_relay_circuits_cut_total (\d+)/m)?.[1])).toBeGreaterThanOrEqual(1)
    // Only circuits are cut: the greedy member is still connected to the relay, and still a member.
    expect(greedy.node.swarm.getConnections(relay.node.peerId).some(c => !c.remoteAddr.toString().includes('/p2p-circuit'))).toBe(true)
    expect(relay.node.view.nodes().map(n => n.nodeId)).toContain('greedy')
  })
})
