/**
 * Card snapshots (`/clawmatrix/cards/1.0.0`, issue 12): a member that
 * connects to a gossip peer gets every card that peer holds in one
 * exchange, each checked against its publisher's own signature and the
 * rules gossip is judged by, instead of waiting for every member to publish
 * again.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { loadOrCreatePeerKey } from '../src/node/identity.js'
import { encodeAnnouncement, type Card } from '../src/services/cluster/card.js'
import { CARD_SNAPSHOT_PROTOCOL } from '../src/services/cluster/card-snapshot.js'
import { signAnnouncement, verifyAnnouncement, type SignedAnnouncement } from '../src/services/cluster/signed-announcement.js'
import { FrameStream } from '../src/services/wire/frame-stream.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import type { ClawmatrixNode } from '../src/services/clawmatrix-node.js'

const nodes = testNodes()
afterEach(async () => { await nodes.cleanup() })

/** Ten minutes: no card is published again while a test runs, so only a snapshot can explain what a newcomer knows. */
const LONG_INTERVAL = { intervalMs: 600_000 }

async function counter (node: ClawmatrixNode, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await node.metrics.registry.getSingleMetric(name)?.get()
  const value = metric?.values.find(v => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
  return value?.value ?? 0
}

function listsAll (member: TestNode, count: number): boolean {
  return member.node.view.nodes().length === count
}

function base64 (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}

function cardFrame (signed: SignedAnnouncement): Record<string, unknown> & { type: string } {
  return { type: 'card', from: base64(signed.from), data: base64(signed.data), seqno: base64(signed.seqno), signature: base64(signed.signature), key: base64(signed.key), ageMs: 0 }
}

describe('card snapshots', () => {
  it('a late joiner lists every member through one snapshot, with no member publishing again', async () => {
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: LONG_INTERVAL })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const members: TestNode[] = []
    for (const nodeId of ['m1', 'm2', 'm3']) members.push(await nodes.start({ nodeId, peers, heartbeat: LONG_INTERVAL }))
    for (const member of [hub, ...members]) {
      await waitFor(`${member.node.config.nodeId} to list all 4`, () => listsAll(member, 4), { timeoutMs: 30_000 })
    }
    // Settled: every member's card carries its circuit address through the hub (its last change).
    for (const member of members) {
      await waitFor(`the hub to know ${member.node.config.nodeId} by its circuit address`, () =>
        hub.node.view.card(member.node.peerId.toString())?.addresses.some(a => a.includes('/p2p-circuit')), { timeoutMs: 30_000 })
    }
    const published = async (): Promise<Record<string, number>> => Object.fromEntries(await Promise.all([hub, ...members].map(async m =>
      [m.node.config.nodeId, await counter(m.node, 'clawmatrix_announcements_sent_total', { kind: 'card' })])))
    const before = await published()

    const late = await nodes.start({ nodeId: 'late', peers, heartbeat: LONG_INTERVAL })
    await waitFor('the late joiner to list all 5', () => listsAll(late, 5), { timeoutMs: 30_000 })
    // Its knowledge came in the snapshot: the hub's card and the three members' ...
    expect(await counter(late.node, 'clawmatrix_snapshot_cards_received_total', { verdict: 'accepted' })).toBeGreaterThanOrEqual(4)
    // ... none of whom published a card for the newcomer.
    expect(await published()).toEqual(before)
    // And the late joiner's own card still reached every member, by gossip through the hub.
    for (const member of members) await waitFor(`${member.node.config.nodeId} to list the late joiner`, () => listsAll(member, 5), { timeoutMs: 30_000 })
  })

  it('signs a card as gossipsub does: a card received by gossip verifies as received', async () => {
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: LONG_INTERVAL })
    const member = await nodes.start({ nodeId: 'member', peers: [{ nodeId: 'hub', url: hub.wsAddress() }], heartbeat: LONG_INTERVAL })
    await waitFor('the hub to know the member by gossip', () => hub.node.view.card(member.node.peerId.toString()) != null, { timeoutMs: 30_000 })
    // Rebuilt from the message gossipsub validated: its signature covers exactly these bytes.
    const [gossiped] = hub.node.view.signedCards()
    expect((await verifyAnnouncement(gossiped!.signed)).toString()).toBe(member.node.peerId.toString())
    // Signed here, for this node's own entry in a snapshot.
    const own = await hub.node.announcer.signedCard()
    expect((await verifyAnnouncement(own!.signed)).toString()).toBe(hub.node.peerId.toString())
    await expect(verifyAnnouncement({ ...own!.signed, data: encodeAnnouncement({ ...hub.node.announcer.card, tags: ['forged'] }) })).rejects.toThrow(/signature/)
  })

  it('refuses an altered card and a card signed by another peer, and names the node that sent them', async () => {
    const evil = await nodes.start({ nodeId: 'evil', listen: true, heartbeat: LONG_INTERVAL })
    const victim = await nodes.start({ nodeId: 'victim', peers: [{ nodeId: 'evil', url: evil.wsAddress() }], heartbeat: LONG_INTERVAL })
    await waitFor('evil to know the victim', () => evil.node.view.card(victim.node.peerId.toString()) != null, { timeoutMs: 30_000 })
    const real = evil.node.view.signedCards().find(c => c.peerId === victim.node.peerId.toString())!.signed
    const victimCard = JSON.parse(new TextDecoder().decode(real.data)) as Card
    const evilKey = await loadOrCreatePeerKey(evil.stateDir)
    // The victim's card with a newer seq and evil's tags: the victim's signature no longer matches.
    const altered = { ...real, data: encodeAnnouncement({ ...victimCard, seq: victimCard.seq + 1_000, tags: ['owned'] }) }
    // The same claim signed properly, by evil: a card for another peer.
    const impersonated = await signAnnouncement(evilKey, encodeAnnouncement({ ...victimCard, seq: victimCard.seq + 2_000, tags: ['owned'] }), 1n)

    // Evil serves its own card (which names it), then the two forgeries.
    await evil.node.swarm.unhandle(CARD_SNAPSHOT_PROTOCOL)
    await evil.node.swarm.handle(CARD_SNAPSHOT_PROTOCOL, async stream => {
      const frames = new FrameStream(stream)
      await frames.read({ signal: AbortSignal.timeout(10_000) })
      const own = await evil.node.announcer.signedCard()
      for (const signed of [own!.signed, altered, impersonated]) await frames.write(cardFrame(signed))
      await frames.write({ type: 'end', at: Date.now(), count: 3 })
      await frames.close()
    })

    const joiner = await nodes.start({ nodeId: 'joiner', peers: [{ nodeId: 'evil', url: evil.wsAddress() }], heartbeat: LONG_INTERVAL })
    await waitFor('the joiner to refuse the forged cards', () => joiner.log.has(/refused 2 of 3 cards in the card snapshot from evil: /), { timeoutMs: 30_000 })
    const line = joiner.log.lines.find(l => l.includes('card snapshot from evil'))!
    expect(line).toMatch(/card for node "victim" \(peer \w+\) carries a signature that is not \w+'s \(and 1 more\)/)
    expect(line).not.toContain(`from ${evil.node.peerId.toString()}`)
    // Twice if the joiner asked again after its graft (this evil peer ignores `since`).
    expect(await counter(joiner.node, 'clawmatrix_snapshot_cards_received_total', { verdict: 'rejected' })).toBeGreaterThanOrEqual(2)
    // Nothing of the forgeries reached the view: the victim, if known, carries its own tags.
    expect(joiner.node.view.card(victim.node.peerId.toString())?.tags ?? []).not.toContain('owned')
    expect(joiner.node.view.nodes().map(n => n.nodeId)).toContain('evil')
  })
})
