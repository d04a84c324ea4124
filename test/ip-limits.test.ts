/**
 * Per-IP limits before Noise (config.limits), with real sockets: WebSockets
 * that upgrade and then never start the handshake, as a flood would.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { testNodes } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
const sockets: WebSocket[] = []
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.close()
  await nodes.cleanup()
})

/** A WebSocket to the node's listener that says nothing; resolves with how it ended ('closed' or still 'open'). */
function stall (wsAddress: string): { socket: WebSocket, closed: Promise<void> } {
  const port = wsAddress.match(/\/tcp\/(\d+)\//)![1]
  const socket = new WebSocket(`ws://127.0.0.1:${port}`)
  sockets.push(socket)
  const closed = new Promise<void>(resolve => { socket.addEventListener('close', () => { resolve() }) })
  return { socket, closed }
}

describe('per-IP limits on inbound connections', () => {
  it('drops connections over pendingHandshakesPerIp, says so once, and still lets a member in afterwards', async () => {
    const relay = await nodes.start({ nodeId: 'relay', listen: true, limits: { pendingHandshakesPerIp: 2 } })
    const flood = Array.from({ length: 6 }, () => stall(relay.wsAddress()))
    await Promise.all(flood.map(async f => { await f.closed }))
    const refusals = relay.log.lines.filter(l => l.includes('refused a WebSocket connection from 127.0.0.1'))
    expect(refusals[0]).toMatch(/warning: refused a WebSocket connection from 127\.0\.0\.1: 2 of its connections are still in their handshake \(limits\.pendingHandshakesPerIp = 2\)/)
    expect(refusals).toHaveLength(1) // once a minute per address, however many

    const member = await nodes.start({ nodeId: 'member', peers: [{ nodeId: 'relay', url: relay.wsAddress() }] })
    await waitFor('the member to join', () => relay.node.view.nodes().some(n => n.nodeId === 'member') && member.node.swarm.getPeers().length === 1)
  })

  it('drops connections over upgradesPerIpPerMinute', async () => {
    const relay = await nodes.start({ nodeId: 'relay', listen: true, limits: { upgradesPerIpPerMinute: 3 } })
    const flood = Array.from({ length: 5 }, () => stall(relay.wsAddress()))
    await Promise.all(flood.map(async f => { await f.closed }))
    await waitFor('the refusal line', () => relay.log.has(/refused a WebSocket connection from 127\.0\.0\.1: it opened 3 in the last minute \(limits\.upgradesPerIpPerMinute = 3\)/))
  })

  it('the limits are in the one schema, with defaults', async () => {
    const { parseConfig } = await import('../src/config/load.js')
    const config = parseConfig({ nodeId: 'a', secret: 'a-secret-of-16-chars-or-more' })
    expect(config.limits).toEqual({ upgradesPerIpPerMinute: 600, pendingHandshakesPerIp: 32 })
    expect(() => parseConfig({ nodeId: 'a', secret: 'a-secret-of-16-chars-or-more', limits: { pendingHandshakesPerIp: 0 } })).toThrow(/pendingHandshakesPerIp/)
  })
})
