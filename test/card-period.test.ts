/**
 * The steady state of card traffic (issue 12): a relay forwards every card
 * to every member, so with every member re-announcing each heartbeat
 * interval its card traffic grew with the square of the members. Past
 * `mesh.cardsPerInterval` members each node re-announces an unchanged card
 * less often, in proportion; changes still go out at once, and a node that
 * vanished still leaves the views.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runCli, type CliProcess } from './helpers/cli.js'
import { SECRET, testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import type { Card } from '../src/services/cluster/card.js'

const nodes = testNodes()
const children: CliProcess[] = []
let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-card-period-')) })
afterEach(async () => {
  await Promise.all(children.splice(0).map(async c => c.stop()))
  await nodes.cleanup()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

function listsAll (member: TestNode, count: number): boolean {
  return member.node.view.nodes().length === count
}

/** Every card `watcher` accepts from `sender` from now on, with when it arrived. */
function cardsFrom (watcher: TestNode, sender: TestNode): Array<{ card: Card, at: number }> {
  const seen: Array<{ card: Card, at: number }> = []
  watcher.node.view.addEventListener('node:updated', event => {
    if (event.detail.peerId === sender.node.peerId.toString()) seen.push({ card: event.detail, at: Date.now() })
  })
  return seen
}

describe('card period', () => {
  it('past cardsPerInterval members an unchanged card is re-announced members / cardsPerInterval intervals apart, and peers expect it so', async () => {
    // Four members at one card per interval: every card once per four intervals (4 s) instead of every second.
    const setting = { heartbeat: { intervalMs: 1_000, maxMissed: 5 }, mesh: { cardsPerInterval: 1 } }
    const hub = await nodes.start({ nodeId: 'hub', listen: true, ...setting })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const members = [hub]
    for (const nodeId of ['m1', 'm2', 'm3']) members.push(await nodes.start({ nodeId, peers, ...setting }))
    for (const member of members) await waitFor(`${member.node.config.nodeId} to list all 4`, () => listsAll(member, 4), { timeoutMs: 60_000 })

    const [, m1, m2] = members as [TestNode, TestNode, TestNode]
    // Settled: m1's last change (its circuit address through the hub) is out; what follows is periodic.
    await waitFor('m2 to know m1 by its circuit address', () =>
      m2.node.view.card(m1.node.peerId.toString())?.addresses.some(a => a.includes('/p2p-circuit')), { timeoutMs: 60_000 })
    const arrivals = cardsFrom(m2, m1)
    // Two periodic cards of m1 after it knew all four: the second of them is one whole period after the first.
    await waitFor('m1 to announce the four-member period twice', () => arrivals.filter(a => a.card.intervalMs === 4_000).length >= 2, { timeoutMs: 90_000 })
    const periodic = arrivals.filter(a => a.card.intervalMs === 4_000)
    // Sent between 90 % and all of the period after the previous one (gossip may deliver either a little late).
    expect(periodic[1]!.at - periodic[0]!.at).toBeGreaterThanOrEqual(0.9 * 4_000 - 250)
    expect(periodic[1]!.card.seq).toBeGreaterThan(periodic[0]!.card.seq)
    // Every node announces the same period, and every view holds each card with it (expiry: three of them).
    for (const member of members) {
      expect(member.node.announcer.periodMs()).toBe(4_000)
      for (const other of members.filter(m => m !== member)) {
        await waitFor(`${member.node.config.nodeId} to hold ${other.node.config.nodeId}'s card with the period`, () =>
          member.node.view.card(other.node.peerId.toString())?.intervalMs === 4_000, { timeoutMs: 60_000 })
      }
    }
  }, 240_000)

  it('a card that changes goes out at once, not with the next period', async () => {
    // Three members at one card per interval of 20 s: a minute between periodic cards.
    const setting = { heartbeat: { intervalMs: 20_000, maxMissed: 3 }, mesh: { cardsPerInterval: 1 } }
    const relayA = await nodes.start({ nodeId: 'relay-a', listen: true, ...setting })
    const viaA = [{ nodeId: 'relay-a', url: relayA.wsAddress() }]
    const member = await nodes.start({ nodeId: 'member', peers: viaA, ...setting })
    const watcher = await nodes.start({ nodeId: 'watcher', peers: viaA, ...setting })
    const memberId = member.node.peerId.toString()
    await waitFor('the watcher to know the member through relay-a', () =>
      watcher.node.view.card(memberId)?.addresses.some(a => a.includes(relayA.node.peerId.toString())), { timeoutMs: 30_000 })

    // A second relay: the member reserves a slot on it, and its card gains an address.
    const relayB = await nodes.start({ nodeId: 'relay-b', listen: true, peers: viaA, ...setting })
    const relayBId = relayB.node.peerId.toString()
    await waitFor('the watcher to know the member through relay-b too', () =>
      watcher.node.view.card(memberId)?.addresses.some(a => a.includes(`/p2p/${relayBId}/p2p-circuit`)), { timeoutMs: 40_000 })
    // Within a period of the card it replaced: the change went out on its own.
    expect(member.node.announcer.periodMs()).toBe(80_000)
  }, 120_000)

  it('a member killed behind its relay leaves every view at once, though its card would last three minutes', async () => {
    // Three members at one card per 20 s interval: a 60 s period, so the card would expire after 180 s.
    const setting = { heartbeat: { intervalMs: 20_000, maxMissed: 3 }, mesh: { cardsPerInterval: 1 } }
    const hub = await nodes.start({ nodeId: 'hub', listen: true, ...setting })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const watcher = await nodes.start({ nodeId: 'watcher', peers, ...setting })
    const config = join(dir, 'doomed.json')
    await writeFile(config, JSON.stringify({ nodeId: 'doomed', secret: SECRET, proxyPort: 0, peers, ...setting }))
    const doomed = runCli(['node', '--config', config, '--state-dir', join(dir, 'doomed')])
    children.push(doomed)
    await waitFor('the watcher to know doomed by its circuit through the hub', () => {
      const card = watcher.node.view.nodes().find(n => n.nodeId === 'doomed')
      return card?.addresses.some(a => a.includes(`/p2p/${hub.node.peerId.toString()}/p2p-circuit`))
    }, { timeoutMs: 60_000 })
    const doomedId = watcher.node.view.nodes().find(n => n.nodeId === 'doomed')!.peerId
    expect(watcher.node.view.card(doomedId)!.intervalMs).toBeGreaterThanOrEqual(20_000)

    doomed.child.kill('SIGKILL')
    // The hub saw its connection close, could not reach doomed, dropped it and said so; the watcher checked too.
    await waitFor('the hub to drop doomed', () => hub.log.has(/node left: doomed \(its connection to this relay closed, and this node cannot reach it otherwise\)/), { timeoutMs: 30_000 })
    await waitFor('the watcher to drop doomed after its own check', () => watcher.log.has(/node left: doomed \(reported gone by hub, and this node cannot reach it either\)/), { timeoutMs: 30_000 })
    expect(watcher.node.view.nodes().map(n => n.nodeId)).toEqual(['watcher', 'hub'])
  }, 120_000)

  it('a member reported gone that is still there sends its card again, and whoever dropped it takes it back', async () => {
    const setting = { heartbeat: { intervalMs: 20_000, maxMissed: 3 }, mesh: { cardsPerInterval: 1 } }
    const hub = await nodes.start({ nodeId: 'hub', listen: true, ...setting })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const watcher = await nodes.start({ nodeId: 'watcher', peers, ...setting })
    const member = await nodes.start({ nodeId: 'member', peers, ...setting })
    const memberId = member.node.peerId.toString()
    await waitFor('the member to list all 3', () => listsAll(member, 3), { timeoutMs: 30_000 })
    // Settled: its last change (the circuit address through the hub) is out.
    await waitFor('the watcher to know the member by its circuit address', () =>
      watcher.node.view.card(memberId)?.addresses.some(a => a.includes('/p2p-circuit')), { timeoutMs: 30_000 })
    // A card announcing the three-member period (60 s): the next periodic one is 54 s away at the earliest.
    await member.node.announcer.publish()
    const published = member.node.announcer.card.seq
    await waitFor('the watcher to hold that card', () => watcher.node.view.card(memberId)?.seq === published, { timeoutMs: 30_000 })
    expect(watcher.node.view.card(memberId)!.intervalMs).toBe(60_000)
    const before = published
    // As if the watcher had lost the member: dropped here, and the notice goes out to everyone, the member included.
    watcher.node.view.drop(memberId, 'dropped by the test')
    ;(watcher.node.announcer as any).sendGone(memberId)
    await waitFor('the watcher to take the member back from its new card', () => (watcher.node.view.card(memberId)?.seq ?? 0) > before, { timeoutMs: 30_000 })
  }, 120_000)
})
