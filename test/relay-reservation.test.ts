/**
 * A member whose first connection to a relay goes through another relay (a
 * circuit) still ends up with a reservation on it, over a direct connection
 * (docs/cluster.md, "Reservations on two relays"). libp2p's circuit
 * transport refuses to reserve over a relayed connection (DoubleRelayError)
 * and does not ask that peer again while any connection to it stays open;
 * at 30 members this left a third of them without their second relay.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, describe, expect, it } from 'vitest'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const { start, cleanup } = testNodes()
afterAll(cleanup, 60_000)

/** Whether `member` holds a reservation on `relay` (it listens on a circuit address through it). */
function reservedOn (member: TestNode, relay: TestNode): boolean {
  return member.node.swarm.getMultiaddrs().some(a => a.toString().startsWith(`${relay.wsAddress()}/p2p-circuit`))
}

describe('relay reservations', () => {
  it('a relay first reached through another relay is reserved on over a direct connection', async () => {
    const relay0 = await start({ nodeId: 'relay-0', listen: true })
    // relay-1 listens and holds a reservation on relay-0, so its card offers a circuit through relay-0 too.
    const relay1 = await start({ nodeId: 'relay-1', listen: true, peers: [{ nodeId: 'relay-0', url: relay0.wsAddress() }] })
    await waitFor('relay-1 to hold a reservation on relay-0', () => reservedOn(relay1, relay0), { timeoutMs: 30_000 })

    // A member that knows nobody yet reaches relay-1 through relay-0 first: that connection to relay-0
    // is its first relay, and the circuit its first connection to relay-1. The retry period is 1 s.
    const member = await start({ nodeId: 'member', peers: [], heartbeat: { intervalMs: 1_000 } })
    const circuit = await member.node.swarm.dial(multiaddr(`${relay0.wsAddress()}/p2p-circuit/p2p/${relay1.node.swarm.peerId}`))
    expect(circuit.remoteAddr.toString()).toContain('/p2p-circuit')

    await waitFor('member to hold a reservation on both relays', () => reservedOn(member, relay0) && reservedOn(member, relay1), { timeoutMs: 60_000 })
      .catch(err => { throw new Error(`${err.message}; it listens on ${member.node.swarm.getMultiaddrs().join(' ') || 'nothing'}`) })
    const toRelay1 = member.node.swarm.getConnections(relay1.node.swarm.peerId).filter(c => c.status === 'open')
    expect(toRelay1.some(c => !c.remoteAddr.toString().includes('/p2p-circuit')), 'a direct connection to relay-1').toBe(true)
    // The circuit to a relay it now reaches directly carried no work, so it was closed.
    await waitFor('the circuit to relay-1 to close', () => member.node.swarm.getConnections(relay1.node.swarm.peerId)
      .every(c => !c.remoteAddr.toString().includes('/p2p-circuit')), { timeoutMs: 30_000 })
  }, 120_000)
})
