/**
 * Operator endpoints of a node: the open /healthz, and what a relay counts
 * in /metrics (reservations, circuits, relayed bytes, refusals by reason).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
afterEach(async () => { await nodes.cleanup() })

async function metricsOf (node: TestNode): Promise<Map<string, number>> {
  const res = await fetch(`${node.node.http.url}/metrics`)
  expect(res.status).toBe(200)
  const samples = new Map<string, number>()
  for (const line of (await res.text()).split('\n')) {
    const match = line.match(/^(\w+(?:\{[^}]*\})?) (\S+)$/)
    if (match != null) samples.set(match[1]!, Number(match[2]))
  }
  return samples
}

describe('GET /healthz', () => {
  it('is 503 with a reason for a member with no peer and no listener, 200 for a listening relay; open, and says nothing else', async () => {
    const lonely = await nodes.start({ nodeId: 'lonely', proxyToken: 'token-0123456789' })
    const res = await fetch(`${lonely.node.http.url}/healthz`)
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ status: 'unavailable', reason: 'no peer is connected and nothing is listening' })

    const relay = await nodes.start({ nodeId: 'relay', listen: true, proxyToken: 'token-0123456789' })
    const ok = await fetch(`${relay.node.http.url}/healthz`)
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ status: 'ok' })
    // Other routes still want the token.
    expect((await fetch(`${relay.node.http.url}/clawmatrix/status`)).status).toBe(401)
  })

  it('a member turns healthy once it has a peer', async () => {
    const relay = await nodes.start({ nodeId: 'relay', listen: true })
    const member = await nodes.start({ nodeId: 'member', peers: [{ nodeId: 'relay', url: relay.wsAddress() }] })
    await waitFor('the member to be healthy', async () => (await fetch(`${member.node.http.url}/healthz`)).status === 200)
  })
})

describe('relay metrics', () => {
  it('counts reservations, circuits, relayed bytes and refusals by reason', async () => {
    const relay = await nodes.start({ nodeId: 'relay', listen: true })
    const peers = [{ nodeId: 'relay', url: relay.wsAddress() }]
    const home = await nodes.start({ nodeId: 'home', peers })
    const office = await nodes.start({ nodeId: 'office', peers })
    await waitFor('home to reach office through the relay', () => home.node.view.reachOf(office.node.peerId.toString()).reach === 'relayed', { timeoutMs: 30_000 })
    // Connections are opened on demand: a dial stands for the work that opens the circuit.
    await home.node.swarm.dial(office.node.peerId)

    const samples = await waitFor('the relay to count two reservations and a circuit', async () => {
      const s = await metricsOf(relay)
      return s.get('clawmatrix_relay_reservations') === 2 && (s.get('clawmatrix_relay_circuits_open') ?? 0) >= 1 ? s : undefined
    })
    expect(samples.get('clawmatrix_relay_requests_total{request="reserve",status="ok"}')).toBeGreaterThanOrEqual(2)
    expect(samples.get('clawmatrix_relay_requests_total{request="connect",status="ok"}')).toBeGreaterThanOrEqual(1)
    // Heartbeats and cards have crossed the circuit by now.
    await waitFor('relayed bytes', async () => ((await metricsOf(relay)).get('clawmatrix_relay_bytes_total') ?? 0) > 0)

    // A connect to a peer the relay holds no reservation for is refused, and the reason counted.
    const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    await expect(home.node.swarm.dial(multiaddr(`${relay.wsAddress()}/p2p-circuit/p2p/${stranger.toString()}`))).rejects.toThrow()
    await waitFor('the refusal to be counted', async () =>
      ((await metricsOf(relay)).get('clawmatrix_relay_requests_total{request="connect",status="no_reservation"}') ?? 0) >= 1)

    // A member leaving takes its circuits along.
    await office.node.stop()
    await waitFor('the circuit to close', async () => (await metricsOf(relay)).get('clawmatrix_relay_circuits_open') === 0)
  })
})
