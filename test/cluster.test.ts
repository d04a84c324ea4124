import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ANNOUNCE_TOPIC, encodeAnnouncement, type Card } from '../src/services/cluster/card.js'
import { runCli, type CliProcess } from './helpers/cli.js'
import { SECRET, testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import type { ClawmatrixNode } from '../src/services/clawmatrix-node.js'

const nodes = testNodes()
const children: CliProcess[] = []
let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-cluster-')) })
afterEach(async () => {
  await Promise.all(children.splice(0).map(async c => c.stop()))
  await nodes.cleanup()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

/** The view of `node` as [nodeId, reach, via] for every other node, sorted. */
function reachTable (node: ClawmatrixNode): Array<[string, string, string | undefined]> {
  return node.view.nodes().filter(n => !n.self).map(n => [n.nodeId, n.reach, n.via?.nodeId])
}

/** home -> relay-a <-> relay-b <- office, and lab listening behind relay-b's config. */
async function fiveNodeTopology (beat = { intervalMs: 1000, maxMissed: 3 }): Promise<Record<string, TestNode>> {
  const relayA = await nodes.start({ nodeId: 'relay-a', listen: true, heartbeat: beat, tags: ['public'] })
  const relayB = await nodes.start({ nodeId: 'relay-b', listen: true, heartbeat: beat, tags: ['public'], peers: [{ nodeId: 'relay-a', url: relayA.wsAddress() }] })
  const home = await nodes.start({
    nodeId: 'home', heartbeat: beat, tags: ['home'], peers: [{ nodeId: 'relay-a', url: relayA.wsAddress() }],
    agents: [{ id: 'main', description: 'the home assistant', tags: ['personal'] }]
  })
  const office = await nodes.start({
    nodeId: 'office', heartbeat: beat, tags: ['office', 'gpu'], peers: [{ nodeId: 'relay-b', url: relayB.wsAddress() }],
    agents: [{ id: 'coder', description: 'writes code', tags: ['code'] }],
    models: [{ id: 'qwen-coder', provider: 'ollama', description: 'local model', baseUrl: 'http://127.0.0.1:11434/v1', apiKeyEnv: 'NOT_SHARED' }],
    toolProxy: { enabled: true, allow: ['exec', 'read'], deny: ['write'] }
  })
  const lab = await nodes.start({ nodeId: 'lab', listen: true, heartbeat: beat, tags: ['office'], peers: [{ nodeId: 'relay-b', url: relayB.wsAddress() }] })
  return { relayA, relayB, home, office, lab }
}

describe('cluster view', () => {
  it('five nodes with two private ones behind different relays converge, each listing the other four', async () => {
    const t = await fiveNodeTopology()
    const all = Object.values(t)
    await waitFor('every view to list four reachable nodes', () =>
      all.every(({ node }) => node.view.nodes().filter(n => !n.self && n.reach !== 'unreachable').length === 4))

    // Capabilities as announced; upstream details of models stay on their node.
    const office = t.home!.node.view.nodes().find(n => n.nodeId === 'office')!
    expect(office).toMatchObject({
      tags: ['office', 'gpu'],
      agents: [{ id: 'coder', description: 'writes code', tags: ['code'] }],
      models: [{ id: 'qwen-coder', provider: 'ollama', description: 'local model' }],
      toolProxy: { enabled: true, allow: ['exec', 'read'], deny: ['write'] }
    })
    expect(JSON.stringify(office)).not.toMatch(/11434|NOT_SHARED/)

    // Reach: the private nodes meet through a relay one of them holds a reservation on.
    const relay = expect.stringMatching(/^relay-[ab]$/)
    expect(reachTable(t.home!.node)).toEqual([
      ['lab', 'direct', undefined], ['office', 'relayed', relay], ['relay-a', 'direct', undefined], ['relay-b', 'direct', undefined]
    ])
    expect(reachTable(t.office!.node)).toEqual([
      ['home', 'relayed', relay], ['lab', 'direct', undefined], ['relay-a', 'direct', undefined], ['relay-b', 'direct', undefined]
    ])
    // Office keeps two of the three listeners it learns of as relays (mesh.relays, default 2), its
    // configured relay-b among them, and reserves a slot on each; the others reach it through either.
    const direct = (t: TestNode): string[] => t.node.swarm.getConnections().filter(c => !c.remoteAddr.toString().includes('p2p-circuit')).map(c => t.node.view.nodeIdOf(c.remotePeer.toString()) ?? '?')
    await waitFor('office to hold two relays', () => new Set(direct(t.office!)).size === 2)
    expect(direct(t.office!)).toContain('relay-b')
    const second = direct(t.office!).find(id => id !== 'relay-b')!
    expect(['relay-a', 'lab']).toContain(second)
    await waitFor('office to announce a circuit through both', () => t.relayA!.node.view.card(t.office!.node.peerId.toString())!.addresses.filter(a => a.includes('p2p-circuit')).length >= 2)
    expect(reachTable(t.relayA!.node).find(([id]) => id === 'office')).toEqual(second === 'relay-a' ? ['office', 'direct', undefined] : ['office', 'relayed', expect.stringMatching(/^(relay-b|lab)$/)])

    // Routing uses the view: agents, tags and models resolve to the right nodes.
    expect(t.home!.node.view.resolve('coder').map(c => [c.nodeId, c.reach])).toEqual([['office', 'relayed']])
    expect(t.home!.node.view.resolve('tags:office').map(c => c.nodeId)).toEqual(['lab', 'office'])
    expect(t.lab!.node.view.resolveModel('clawmatrix/qwen-coder').map(c => c.nodeId)).toEqual(['office'])
    expect(() => t.home!.node.view.resolve('nobody')).toThrow(/unknown target "nobody": the cluster offers agents \[coder, main\]/)

    // The HTTP status carries the same view.
    const status = await (await fetch(`${t.home!.node.http.url}/clawmatrix/status`)).json() as any
    expect(status.cluster.map((n: any) => n.nodeId)).toEqual(['home', 'lab', 'office', 'relay-a', 'relay-b'])
  })

  it('moves 50 MB over the longest relayed path, on a connection without relay limits', async () => {
    // Pings queue behind the bulk data; a 1 s heartbeat on this 2-core machine would call the link dead.
    const t = await fiveNodeTopology({ intervalMs: 10_000, maxMissed: 3 })
    await waitFor('home to reach office through relay-b', () => reachTable(t.home!.node).some(([id, reach]) => id === 'office' && reach === 'relayed'))
    const officePeer = t.office!.node.peerId
    const protocol = '/clawmatrix-test/sink/1.0.0'
    await t.office!.node.swarm.handle(protocol, async stream => {
      let received = 0
      for await (const chunk of stream) received += chunk.byteLength
      stream.send(new TextEncoder().encode(String(received)))
      await stream.close()
    }, { runOnLimitedConnection: true })

    const total = 50 * 1024 * 1024
    const chunk = new Uint8Array(64 * 1024).fill(7)
    // Connections are made on demand: this stream opens the relayed one.
    const stream = await t.home!.node.swarm.dialProtocol(officePeer, protocol, { runOnLimitedConnection: true })
    const connection = t.home!.node.swarm.getConnections(officePeer).find(c => c.remoteAddr.toString().includes('p2p-circuit'))!
    expect(connection.limits).toBeUndefined() // a limited relay connection would end at 128 KiB / 2 min
    for (let sent = 0; sent < total; sent += chunk.byteLength) {
      // The 'drain' event, not stream.onDrain(): in @libp2p/utils 7.4 that promise is not renewed after the first drain.
      if (!stream.send(chunk)) {
        await new Promise((resolve, reject) => {
          stream.addEventListener('drain', resolve, { once: true })
          stream.addEventListener('close', (event: any) => { reject(event.error ?? new Error(`the stream closed after ${sent} bytes`)) }, { once: true })
        })
      }
    }
    await stream.close()
    let reply = ''
    for await (const part of stream) reply += new TextDecoder().decode(part.subarray())
    expect(Number(reply)).toBe(total)
    expect(connection.status).toBe('open')
  })

  it('a gracefully stopped node leaves every view at once; a killed one expires or is found gone by its relay', async () => {
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: { intervalMs: 500, maxMissed: 3 } })
    const watcher = await nodes.start({ nodeId: 'watcher', heartbeat: { intervalMs: 500, maxMissed: 3 }, peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    const polite = await nodes.start({ nodeId: 'polite', heartbeat: { intervalMs: 500, maxMissed: 3 }, peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    const config = join(dir, 'doomed.json')
    await writeFile(config, JSON.stringify({
      nodeId: 'doomed', secret: SECRET, proxyPort: 0, heartbeat: { intervalMs: 500, maxMissed: 3 }, peers: [{ nodeId: 'hub', url: hub.wsAddress() }]
    }))
    const doomed = runCli(['node', '--config', config, '--state-dir', join(dir, 'doomed')])
    children.push(doomed)
    // doomed is a child process: at load 15 its start alone took longer than the default 20 s
    await waitFor('the watcher to know polite and doomed', () => ['polite', 'doomed'].every(id => watcher.node.view.nodes().some(n => n.nodeId === id)), { timeoutMs: 60_000 })

    await polite.node.stop()
    await waitFor('polite to leave', () => watcher.log.has(/node left: polite \(left\)/))

    doomed.child.kill('SIGKILL')
    // Whichever comes first: its card's expiry (three 500 ms periods), or the hub's notice once it lost doomed's connection.
    await waitFor('doomed to leave', () => watcher.log.has(/node left: doomed \((expired: no announcement for \d+ s|reported gone by hub, and this node cannot reach it either)\)/))
    expect(watcher.node.view.nodes().map(n => n.nodeId)).toEqual(['watcher', 'hub'])
  }, 120_000)
})

describe('cluster view at size', () => {
  it('sixteen nodes on one IP all converge (no gossip penalty for sharing an address)', async () => {
    // gossipsub's default IP-colocation penalty grays out peers past ~14 per IP: everyone here is on 127.0.0.1.
    const hub = await nodes.start({ nodeId: 'n00', listen: true })
    const rest = await Promise.all(Array.from({ length: 15 }, async (_, i) =>
      nodes.start({ nodeId: `n${String(i + 1).padStart(2, '0')}`, listen: true, peers: [{ nodeId: 'n00', url: hub.wsAddress() }] })))
    const all = [hub, ...rest]
    await waitFor('every view to list all 16 nodes', () => all.every(t => t.node.view.nodes().length === 16), { timeoutMs: 60_000, intervalMs: 250 })
  }, 90_000)
})

describe('announcement checks', () => {
  async function pair (): Promise<{ honest: TestNode, member: TestNode, observer: TestNode }> {
    const honest = await nodes.start({ nodeId: 'honest', listen: true, agents: [{ id: 'main' }] })
    const member = await nodes.start({ nodeId: 'member', peers: [{ nodeId: 'honest', url: honest.wsAddress() }] })
    const observer = await nodes.start({ nodeId: 'observer', peers: [{ nodeId: 'honest', url: honest.wsAddress() }] })
    await waitFor('everyone to know and reach everyone', () =>
      [honest, member, observer].every(t => t.node.view.nodes().filter(n => n.reach !== 'unreachable').length === 3))
    // Members connect on demand: these checks need the member's announcements to reach the observer
    // directly, not judged (and dropped) by the listening node first, so they open that connection.
    await member.node.swarm.dial(observer.node.peerId)
    // The member's own announcements go straight to the observer only once it knows the observer subscribed.
    await waitFor('the member to see the observer subscribed', () =>
      member.node.swarm.services.pubsub.getSubscribers(ANNOUNCE_TOPIC).some(p => p.equals(observer.node.peerId)))
    return { honest, member, observer }
  }

  async function publishAs (sender: TestNode, card: Card): Promise<void> {
    await sender.node.swarm.services.pubsub.publish(ANNOUNCE_TOPIC, encodeAnnouncement(card))
  }

  it('rejects a card that speaks for another node, and logs it', async () => {
    const { honest, member, observer } = await pair()
    const forged: Card = { ...honest.node.announcer.card, agents: [{ id: 'evil', description: 'hijacked', tags: [] }], seq: Date.now() * 2 }
    await publishAs(member, forged)
    await waitFor('the observer to log the forgery', () =>
      observer.log.has(new RegExp(`rejected announcement relayed by \\w+: card for peer ${honest.node.peerId} \\(node "honest"\\) was signed by another peer, ${member.node.peerId}`)))
    expect(observer.node.view.nodes().find(n => n.nodeId === 'honest')!.agents.map(a => a.id)).toEqual(['main'])
    expect(() => observer.node.view.resolve('evil')).toThrow(/unknown target/)
  })

  it('ignores a replayed (stale) card, and logs it', async () => {
    const { member, observer } = await pair()
    const old = member.node.announcer.card
    await member.node.announcer.publish()
    // A card recorded an hour ago; one only slightly older is gossip reordering and logged at debug level.
    await publishAs(member, { ...old, tags: ['replayed'], seq: old.seq - 3_600_000 })
    await waitFor('the observer to log the replay', () => observer.log.has(/ignored announcement relayed by \w+: replayed announcement from member: sequence \d+, already saw \d+/))
    expect(observer.node.view.nodes().find(n => n.nodeId === 'member')!.tags).toEqual([])
  })

  it('rejects a malformed card, and logs it', async () => {
    const { member, observer } = await pair()
    await member.node.swarm.services.pubsub.publish(ANNOUNCE_TOPIC, new TextEncoder().encode('{"v":1,"kind":"card","nodeId":42}'))
    await waitFor('the observer to log it', () => observer.log.has(/rejected announcement relayed by \w+: malformed card/))
    await member.node.swarm.services.pubsub.publish(ANNOUNCE_TOPIC, new TextEncoder().encode('not json'))
    await waitFor('the observer to log it', () => observer.log.has(/rejected announcement relayed by \w+: announcement is not JSON/))
  })

  it('a card that renames its node to a name already held stays second to the holder, and a card back frees the name', async () => {
    const { honest, member, observer } = await pair()
    const view = observer.node.view
    const own = member.node.announcer.card
    // Sequence numbers ahead of the member's own announcer, so its next card does not undo these.
    const seq = Date.now() * 2
    await publishAs(member, { ...own, nodeId: 'honest', seq })
    await waitFor('the observer to list two claimants of "honest"', () => view.nodes().filter(n => n.nodeId === 'honest').length === 2)
    const renamed = view.nodes().find(n => n.peerId === member.node.peerId.toString())!
    expect(renamed.nameHeldBy).toBe(honest.node.peerId.toString())
    expect(renamed.conflictsWith).toEqual([honest.node.peerId.toString()])
    expect(view.resolve('honest').map(c => c.peerId)).toEqual([honest.node.peerId.toString()])
    expect([view.contested('honest'), view.contested('member')]).toEqual([true, false])

    await publishAs(member, { ...own, seq: seq + 1 })
    await waitFor('the observer to list the member by its own name again', () => view.nodes().some(n => n.nodeId === 'member'))
    expect(view.nodes().every(n => n.conflictsWith == null && n.nameHeldBy == null)).toBe(true)
    expect([view.contested('honest'), view.contested('member')]).toEqual([false, false])
    expect(view.resolve('member').map(c => c.peerId)).toEqual([member.node.peerId.toString()])
  })

  it('reports two live peers claiming one nodeId on both sides; the name stays with the peer seen first', async () => {
    const { honest, observer } = await pair()
    const impostor = await nodes.start({ nodeId: 'honest', peers: [{ nodeId: 'x', url: honest.wsAddress() }] })
    const clash = /node id "honest" is claimed by 2 live peers/
    await waitFor('both claimants and the observer to report the clash', () => honest.log.has(clash) && impostor.log.has(clash) && observer.log.has(clash))
    expect(honest.log.lines.find(l => clash.test(l))).toMatch(/it stays with this node/)
    expect(impostor.log.lines.find(l => clash.test(l))).toMatch(/it stays with this node/)
    const seen = observer.node.view.nodes().filter(n => n.nodeId === 'honest')
    expect(seen.map(n => n.peerId).sort()).toEqual([honest.node.peerId.toString(), impostor.node.peerId.toString()].sort())
    expect(observer.node.view.resolve('honest').map(c => c.peerId)).toEqual([honest.node.peerId.toString()])
    // Neither card overwrote the other.
    expect(seen.every(n => n.conflictsWith?.length === 1)).toBe(true)
    expect(seen.find(n => n.peerId === impostor.node.peerId.toString())!.nameHeldBy).toBe(honest.node.peerId.toString())
  })
})
