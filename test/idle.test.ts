import { afterEach, describe, expect, it, vi } from 'vitest'
import { ANNOUNCE_TOPIC, encodeAnnouncement } from '../src/services/cluster/card.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

// What an idle cluster does on the wire and in CPU (docs/benchmarks.md, Idle CPU): the work each card costs.

const nodes = testNodes()
afterEach(async () => { await nodes.cleanup() })

/** A relay and two dial-out members, every view complete. */
async function star (): Promise<{ relay: TestNode, a: TestNode, b: TestNode }> {
  const relay = await nodes.start({ nodeId: 'relay', listen: true })
  const peers = [{ nodeId: 'relay', url: relay.wsAddress() }]
  const a = await nodes.start({ nodeId: 'a', peers, agents: [{ id: 'main', description: 'an agent' }] })
  const b = await nodes.start({ nodeId: 'b', peers })
  await waitFor('every view to list all three', () => [relay, a, b].every(t => t.node.view.nodes().length === 3))
  return { relay, a, b }
}

describe('idle cluster', () => {
  it('a relay forwards a card to a member without an IDONTWANT for it', async () => {
    const { relay, a, b } = await star()
    // The relay forwards (and would send IDONTWANT) to its mesh peers: a view can complete by lazy gossip before.
    const relayPubsub = relay.node.swarm.services.pubsub as unknown as { getMeshPeers: (topic: string) => string[] }
    await waitFor('b in the relay\'s mesh', () => relayPubsub.getMeshPeers(ANNOUNCE_TOPIC).includes(b.node.peerId.toString()))
    // gossipsub's own threshold is 512 bytes: a card above it would otherwise get one.
    expect(encodeAnnouncement(a.node.announcer.card).byteLength).toBeGreaterThan(512)
    const idontwants = vi.spyOn(b.node.swarm.services.pubsub as unknown as { handleIdontwant: (...args: unknown[]) => void }, 'handleIdontwant')
    for (let i = 0; i < 3; i++) {
      await a.node.announcer.publish()
      const seq = a.node.announcer.card.seq
      await waitFor(`b to hold a's card ${seq}`, () => (b.node.view.card(a.node.peerId.toString())?.seq ?? 0) >= seq)
    }
    expect(idontwants).not.toHaveBeenCalled()
  })
})
