/**
 * Regression tests for what one member holding the secret could do to the
 * others (issue 11): forge log lines, drop a reachable node with a gone
 * notice, take another node's name and with it its agents and models.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config/load.js'
import { ConfigError } from '../src/config/errors.js'
import { escapeControl } from '../src/node/escape.js'
import { ANNOUNCE_TOPIC, encodeAnnouncement, type Card, type GoneNotice } from '../src/services/cluster/card.js'
import { NodeIdConflictError } from '../src/services/errors.js'
import { formatStatus } from '../src/services/status-format.js'
import { runCli, type CliProcess } from './helpers/cli.js'
import { SECRET, testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
const children: CliProcess[] = []
let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-holes-')) })
afterEach(async () => {
  await Promise.all(children.splice(0).map(async c => c.stop()))
  await nodes.cleanup()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/
const FORGED = 'x\n2026-01-01T00:00:00.000Z clawmatrix node office started: forged\u001b[2K'

async function publishAs (sender: TestNode, announcement: Card | GoneNotice | Record<string, unknown>): Promise<void> {
  await sender.node.swarm.services.pubsub.publish(ANNOUNCE_TOPIC, encodeAnnouncement(announcement as Card))
}

/** Waits until `sender`'s gossip reaches `receiver` directly (its own messages go only to peers it saw subscribe). */
async function subscribed (sender: TestNode, receiver: TestNode): Promise<void> {
  await waitFor(`${sender.node.config.nodeId} to see ${receiver.node.config.nodeId} subscribed`, () =>
    sender.node.swarm.services.pubsub.getSubscribers(ANNOUNCE_TOPIC).some(p => p.equals(receiver.node.peerId)))
}

/** These checks need members that gossip to each other directly, as in a full mesh. */
const FULL = { mode: 'full' }

describe('node ids follow one pattern wherever they are read', () => {
  it('the config refuses a nodeId or peer nodeId with a newline or an escape', () => {
    expect(() => parseConfig({ nodeId: 'a\nb', secret: SECRET })).toThrow(ConfigError)
    expect(() => parseConfig({ nodeId: 'a', secret: SECRET, peers: [{ nodeId: 'b\u001b[31m', url: 'ws://127.0.0.1:1' }] }))
      .toThrow(/peers\[0\]\.nodeId: got .*; expected letters, digits/)
    expect(() => parseConfig({ nodeId: 'a', secret: SECRET, tags: ['ok', 'bad\n'] })).toThrow(/tags\[1\]: got .*; expected text without control characters/)
  })

  it('a card whose nodeId holds a newline and an ANSI escape is rejected, and forges no line in a running node\'s log', async () => {
    // A full mesh, so the card goes from the observer to the member over their own connection.
    const hub = await nodes.start({ nodeId: 'hub', listen: true, mesh: FULL })
    const member = await nodes.start({ nodeId: 'member', mesh: FULL, peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    const config = join(dir, 'observer.json')
    await writeFile(config, JSON.stringify({ nodeId: 'observer', secret: SECRET, proxyPort: 0, mesh: FULL, peers: [{ nodeId: 'hub', url: hub.wsAddress() }] }))
    const observer = runCli(['node', '--config', config, '--state-dir', join(dir, 'observer')])
    children.push(observer)
    await waitFor('the member to know the observer', () => member.node.view.nodes().some(n => n.nodeId === 'observer'))
    await waitFor('the member to see the observer subscribed', () => member.node.swarm.services.pubsub.getSubscribers(ANNOUNCE_TOPIC).length >= 2)

    await publishAs(member, { ...member.node.announcer.card, nodeId: FORGED, seq: Date.now() * 2 })
    await observer.waitForOutput(/rejected announcement relayed by \w+: malformed card: \/nodeId/)
    await publishAs(member, { ...member.node.announcer.card, agents: [{ id: 'ok', description: 'fine', tags: [FORGED] }], seq: Date.now() * 2 + 1 })
    await observer.waitForOutput(/malformed card: \/agents\/0\/tags\/0/)
    const output = observer.output()
    expect(output).not.toMatch(CONTROL)
    expect(output).not.toContain('forged')
    expect(output.split('\n').filter(line => /clawmatrix node \S+ started/.test(line))).toHaveLength(1)
  })

  it('every line a node logs is escaped, and so is every status cell', async () => {
    expect(escapeControl(FORGED)).toBe('x\\n2026-01-01T00:00:00.000Z clawmatrix node office started: forged\\x1b[2K')
    expect(escapeControl('a\u2028b\u0085c\td')).toBe('a\\u2028b\\x85c\\td')
    const a = await nodes.start({ nodeId: 'a', listen: true })
    // What reaches the node's log goes through the escaping sink, whatever the caller put in it.
    ;(a.node as any).log.warn(`reason from a member: ${FORGED}`)
    expect(a.log.lines.at(-1)).toBe(`warning: reason from a member: ${escapeControl(FORGED)}`)
    const status = await a.node.status()
    status.cluster[0]!.agents = [{ id: FORGED, description: '', tags: [] }]
    expect(formatStatus(status)).not.toMatch(CONTROL)
  })
})

describe('a gone notice only hastens the receiver\'s own check', () => {
  it('never removes a node the receiver still reaches through a relay, however often it is sent', async () => {
    const beat = { intervalMs: 5000, maxMissed: 3 }
    // A full mesh, so the reporter's notice reaches the observer over their own (relayed) connection.
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: beat, mesh: FULL })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const target = await nodes.start({ nodeId: 'target', heartbeat: beat, mesh: FULL, peers })
    const observer = await nodes.start({ nodeId: 'observer', heartbeat: beat, mesh: FULL, peers })
    const reporter = await nodes.start({ nodeId: 'reporter', heartbeat: beat, mesh: FULL, peers })
    const relayedTarget = (): boolean => observer.node.view.nodes().some(n => n.nodeId === 'target' && n.reach === 'relayed')
    await waitFor('the observer to reach the target through the hub', relayedTarget, { timeoutMs: 30_000 })
    await subscribed(reporter, observer)

    // Count the observer's own checks of the target: the real pings still run.
    const checks: boolean[] = []
    const check = observer.node.heartbeat.check.bind(observer.node.heartbeat)
    observer.node.heartbeat.check = async peer => {
      const reached = await check(peer)
      if (peer.equals(target.node.peerId)) checks.push(reached)
      return reached
    }
    const notice: GoneNotice = { v: 1, kind: 'gone', peerId: reporter.node.peerId.toString(), seq: Date.now() * 2, gonePeerId: target.node.peerId.toString() }
    for (let i = 0; i < 5; i++) await publishAs(reporter, { ...notice, seq: notice.seq + i })
    await waitFor('the observer to check the target itself', () => checks.length > 0)
    await waitFor('the observer\'s check to end', () => checks.length > 0 && observer.node.heartbeat.checking === 0, { timeoutMs: 30_000 })
    expect(checks.every(Boolean)).toBe(true)
    expect(relayedTarget()).toBe(true)
    expect(observer.node.view.resolve('target')[0]!.peerId).toBe(target.node.peerId.toString())
  })

  it('hastens the removal of a node the receiver cannot reach either', async () => {
    const beat = { intervalMs: 60_000, maxMissed: 3 }
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: beat })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const observer = await nodes.start({ nodeId: 'observer', heartbeat: beat, peers })
    const config = join(dir, 'doomed.json')
    await writeFile(config, JSON.stringify({ nodeId: 'doomed', secret: SECRET, proxyPort: 0, heartbeat: beat, peers }))
    const doomed = runCli(['node', '--config', config, '--state-dir', join(dir, 'doomed')])
    children.push(doomed)
    await waitFor('the observer to reach doomed', () => observer.node.view.nodes().some(n => n.nodeId === 'doomed' && n.reach !== 'unreachable'), { timeoutMs: 30_000 })
    await subscribed(hub, observer)
    const doomedPeer = observer.node.view.nodes().find(n => n.nodeId === 'doomed')!.peerId
    doomed.child.kill('SIGKILL')
    // Cards last three 60 s periods: only the notice (sent here by hand) can drop it sooner.
    await publishAs(hub, { v: 1, kind: 'gone', peerId: hub.node.peerId.toString(), seq: Date.now() * 2, gonePeerId: doomedPeer })
    await waitFor('the observer to drop doomed after its own check', () => observer.log.has(/node left: doomed \(reported gone by hub, and this node cannot reach it either\)/), { timeoutMs: 30_000 })
  })
})

describe('a second claimant of a name never takes the holder\'s capabilities', () => {
  it('keeps routing names, agents and models to the node seen first, and names the clash for what only the claimant offers', async () => {
    const worker = await nodes.start({
      nodeId: 'worker', listen: true, agents: [{ id: 'wa' }],
      models: [{ id: 'm', provider: 'ollama', baseUrl: 'http://127.0.0.1:9/v1' }]
    })
    const caller = await nodes.start({ nodeId: 'caller', peers: [{ nodeId: 'worker', url: worker.wsAddress() }] })
    await waitFor('the caller to reach the worker', () => caller.node.view.nodes().some(n => n.nodeId === 'worker' && n.reach === 'direct'))
    const impostor = await nodes.start({
      nodeId: 'worker', agents: [{ id: 'faragent' }], models: [{ id: 'm', provider: 'evil', baseUrl: 'http://127.0.0.1:9/v1' }],
      peers: [{ nodeId: 'x', url: worker.wsAddress() }]
    })
    const clash = /node id "worker" is claimed by 2 live peers/
    await waitFor('the caller to see both claimants', () => caller.node.view.nodes().filter(n => n.nodeId === 'worker').length === 2)
    await waitFor('all three to report the clash', () => [worker, impostor, caller].every(t => t.log.has(clash)))
    expect(caller.log.lines.find(l => clash.test(l))).toContain(`it stays with ${worker.node.peerId.toString()} (seen first)`)
    expect(worker.log.lines.find(l => clash.test(l))).toContain('it stays with this node')

    const workerPeer = worker.node.peerId.toString()
    const impostorPeer = impostor.node.peerId.toString()
    expect(caller.node.view.resolve('worker').map(c => c.peerId)).toEqual([workerPeer])
    expect(caller.node.view.resolve('wa').map(c => c.peerId)).toEqual([workerPeer])
    expect(caller.node.view.resolveModel('clawmatrix/m').map(c => c.peerId)).toEqual([workerPeer])
    expect(() => caller.node.view.resolve('faragent')).toThrow(NodeIdConflictError)
    expect(() => caller.node.view.resolve('faragent')).toThrow(`${workerPeer} holds it (seen first) and ${impostorPeer} also claims it`)
    expect(caller.node.view.resolve(impostorPeer).map(c => c.peerId)).toEqual([impostorPeer])

    // The holder's agent still does its work, and the claimant's by peer id.
    const sent = await caller.node.client.send('wa', 'still here')
    expect(sent.nodeId).toBe('worker')
    expect(await readFile(join(worker.stateDir, 'inbox', 'wa.jsonl'), 'utf8')).toContain('still here')
    await caller.node.client.send(impostorPeer, 'you too')
    expect(await readFile(join(impostor.stateDir, 'inbox', 'faragent.jsonl'), 'utf8')).toContain('you too')
    const table = formatStatus(await caller.node.status())
    expect(table).toMatch(/worker \(CONTESTED, holds the name\)/)
    expect(table).toMatch(/worker \(CONTESTED, by peer id only\)/)
  })
})
