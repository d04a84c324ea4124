import { ANNOUNCE_TOPIC } from '../src/services/cluster/card.js'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import OpenAI from 'openai'
import { FakeOpenAIServer } from './fixtures/fake-upstream/index.js'
import { Authority, joinInvite, loadJoinedState, withJoinedState, type InviteOptions } from '../src/membership/index.js'
import { createSwarm, type Swarm } from '../src/node/swarm.js'
import { parseConfig } from '../src/config/load.js'
import { runCliToEnd } from './helpers/cli.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
const swarms: Swarm[] = []
let dir: string
let auth: string
// Generous misses: the machine running the tests may be loaded, and a lost beat must not cut a call.
const BEAT = { intervalMs: 1000, maxMissed: 10 }

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clawmatrix-membership-'))
  auth = join(dir, 'authority')
  const { code, output } = await runCliToEnd(['init', '--authority-dir', auth])
  expect(code, output).toBe(0)
  expect(output).toMatch(/authority: ed25519:[\w-]{43}/)
})
afterEach(async () => {
  await Promise.allSettled(swarms.splice(0).map(async s => { await s.stop() }))
  await nodes.cleanup()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

let counter = 0

/** `clawmatrix invite` then `clawmatrix join`, as real CLI processes; returns the joined state dir. */
async function inviteAndJoin (nodeId: string, flags: string[] = []): Promise<string> {
  // --new-key: tests reuse names, and a second invite for a live name would otherwise renew it.
  const invite = await runCliToEnd(['invite', nodeId, '--authority-dir', auth, '--new-key', ...flags])
  expect(invite.code, invite.output).toBe(0)
  const token = invite.output.match(/clawmatrix-invite-v1\.[\w-]+/)![0]
  const stateDir = join(dir, `${nodeId}-${++counter}`)
  const join_ = await runCliToEnd(['join', token, '--state-dir', stateDir])
  expect(join_.code, join_.output).toBe(0)
  // The token holds the secret and a key; nothing join prints may repeat it.
  expect(join_.output).not.toContain(token)
  return stateDir
}

/** The same as inviteAndJoin, in process (a CLI process costs seconds on a loaded machine). */
async function joined (nodeId: string, options: Omit<InviteOptions, 'nodeId'> = {}): Promise<string> {
  const { token } = await (await Authority.open(auth)).invite({ nodeId, newKey: true, ...options })
  const stateDir = join(dir, `${nodeId}-${++counter}`)
  await joinInvite(token, stateDir)
  return stateDir
}

/** A real node started from a joined state directory, as `clawmatrix node` would. */
async function member (stateDir: string, input: Record<string, unknown> = {}): Promise<TestNode> {
  return nodes.start(withJoinedState({ heartbeat: BEAT, ...input }, await loadJoinedState(stateDir)), stateDir)
}

function names (t: TestNode): string[] {
  return t.node.view.nodes().filter(n => !n.self).map(n => n.nodeId).sort()
}

/** A bare swarm with the cluster secret whose gate presents `credential`: what an attacker can build. */
async function impostor (secret: string, credential: unknown, key?: Uint8Array): Promise<Swarm> {
  const config = parseConfig({ nodeId: 'impostor', secret, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0 })
  const privateKey = key == null ? await generateKeyPair('Ed25519') : privateKeyFromProtobuf(key)
  const bytes = new TextEncoder().encode(JSON.stringify(credential))
  const swarm = await createSwarm(config, privateKey, { admission: { credential: () => bytes, admit: () => {}, refuses: () => false } })
  await swarm.start()
  swarms.push(swarm)
  return swarm
}

describe('managed membership', () => {
  it('init -> invite -> join forms a managed cluster whose names and tags come from the certificates', async () => {
    const hubDir = await inviteAndJoin('hub', ['--tags', 'public'])
    const homeDir = await inviteAndJoin('home', ['--tags', 'laptop,personal'])
    const hub = await member(hubDir, { listen: true })
    // The config claims a tag the certificate does not grant: the certificate wins.
    const home = await member(homeDir, { tags: ['gpu'], peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    await waitFor('hub and home to see each other', () => names(hub).includes('home') && names(home).includes('hub'))
    expect(hub.node.view.nodes().find(n => n.nodeId === 'home')?.tags).toEqual(['laptop', 'personal'])
    expect(home.node.membership?.nameOf(hub.node.peerId.toString())).toBe('hub')
    expect(hub.node.membership?.certificateOf(home.node.peerId.toString())?.tags).toEqual(['laptop', 'personal'])
    // The joined state holds the secret; the config did not.
    const state = JSON.parse(await readFile(join(homeDir, 'membership.json'), 'utf8'))
    expect(state.secret).toMatch(/^[0-9a-f]{64}$/)
  })

  it('refuses a secret holder without a certificate, a stolen certificate, an expired one, and a name claimed against its certificate', async () => {
    const hubDir = await joined('hub', { tags: ['public'] })
    const hub = await member(hubDir, { listen: true })
    const hubSecret = (await loadJoinedState(hubDir))!.secret
    const address = multiaddr(hub.wsAddress())

    // 1. The cluster secret and no certificate: an unmanaged node with the right secret.
    const plain = await nodes.start({ nodeId: 'plain', secret: hubSecret, peers: [{ nodeId: 'hub', url: hub.wsAddress() }], heartbeat: BEAT })
    await waitFor('plain to be refused', () => plain.node.dialer.list()[0]!.attempts >= 2)

    // 2. A copy of hub's valid certificate, presented with another key.
    const stolen = await impostor(hubSecret, { certificate: (await loadJoinedState(hubDir))!.certificate })
    await expect(stolen.dial(address)).rejects.toThrow(/the peer refused this node: .*presented the certificate of "hub", issued to peer/)

    // 3. An expired certificate (valid signature, lifetime over).
    const oldDir = await joined('old', { expiresInMs: 1000 })
    const old = (await loadJoinedState(oldDir))!
    await waitFor('the certificate to expire', () => old.certificate.expiresAt < Date.now())
    const expired = await impostor(hubSecret, { certificate: old.certificate }, await readFile(join(oldDir, 'peer-key')))
    await expect(expired.dial(address)).rejects.toThrow(/the peer refused this node: the certificate of "old" expired/)

    // 4. A member certified as "mallory" whose card claims to be "hub"'s neighbour "office".
    const officeDir = await joined('office')
    const office = await member(officeDir, { peers: [{ nodeId: 'hub', url: hub.wsAddress() }], agents: [{ id: 'coder', description: 'writes code' }] })
    const malloryDir = await joined('mallory')
    const mallory = await member(malloryDir, { peers: [{ nodeId: 'hub', url: hub.wsAddress() }], agents: [{ id: 'coder', description: 'fake' }] })
    await waitFor('hub to see office and mallory', () => names(hub).join() === 'mallory,office')
    // Members connect on demand, and hub drops the card it ignores: mallory talks to office directly.
    await waitFor('mallory to know office\'s address through hub', () =>
      mallory.node.view.card(office.node.peerId.toString())?.addresses.some(a => a.includes('/p2p-circuit')) === true)
    await mallory.node.swarm.dial(office.node.peerId)
    await waitFor('mallory to see office subscribed', () =>
      mallory.node.swarm.services.pubsub.getSubscribers(ANNOUNCE_TOPIC).some(p => p.equals(office.node.peerId)))
    // The node's own card is its LocalCard, which the announcer publishes.
    const card = (mallory.node.announcer as any).self
    card.init = { ...card.init, config: { ...card.init.config, nodeId: 'office' } }
    await mallory.node.announcer.publish()
    await waitFor('hub to ignore the false card', () => hub.log.has(/names it "office", but its certificate names it "mallory"/))
    await waitFor('office to ignore it too', () => office.log.has(/names it "office", but its certificate names it "mallory"/))

    // None of them is in any view or route; office's agent still resolves to office alone.
    // Every card mallory sends now is ignored, so its entry ages out; office stays, and is office.
    for (const t of [hub, office]) {
      expect(t.node.view.nodes().filter(n => n.nodeId === 'office').map(n => n.peerId)).toEqual([office.node.peerId.toString()])
      const peerIds = t.node.view.nodes().map(n => n.peerId)
      for (const refused of [stolen.peerId, expired.peerId, plain.node.peerId]) expect(peerIds).not.toContain(refused.toString())
    }
    expect(hub.node.view.resolve('coder').map(c => c.nodeId)).toContain('office')
    expect(hub.node.view.resolve('office').map(c => c.peerId)).toEqual([office.node.peerId.toString()])
    expect(hub.node.swarm.getConnections(plain.node.peerId)).toEqual([])
    expect(plain.node.view.nodes().filter(n => !n.self)).toEqual([])
  })
})

describe('revocation', () => {
  it('cuts a revoked node off everywhere, through the relay too, and a node offline during the revoke learns it on reconnect', async () => {
    const hub = await member(await joined('hub'), { listen: true })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const a = await member(await joined('a'), { peers })
    const bDir = await joined('b')
    const b = await member(bDir, { peers })
    const cDir = await joined('c')
    let c = await member(cDir, { listen: true, peers })
    const bId = b.node.peerId.toString()
    await waitFor('a to reach b through the relay, and c to know b', () =>
      a.node.view.reachOf(bId).reach === 'relayed' && names(c).includes('b'))
    // c goes offline and misses the revoke.
    await c.node.stop()

    const revoke = await runCliToEnd(['revoke', 'b', '--authority-dir', auth, '--port', String(new URL(a.node.http.url).port)])
    expect(revoke.code, revoke.output).toBe(0)
    expect(revoke.output).toContain(`revoked "b" (peer id ${bId})`)

    await waitFor('hub and a to drop b and every connection to it', () => [hub, a].every(t =>
      !names(t).includes('b') && t.node.swarm.getConnections(b.node.peerId).length === 0))
    expect(a.log.has(/b \(peer id \w+\) is no longer a member: revoked by the cluster authority/)).toBe(true)
    // b's own redials are refused, at the relay as well.
    await waitFor('b to be refused by the hub', () => /the peer refused this node: .*revoked/.test(b.node.dialer.list()[0]?.lastError ?? ''))
    await expect(b.node.swarm.dial(multiaddr(hub.wsAddress()))).rejects.toThrow(/revoked/)

    // c comes back with its old list, learns the revocation from the hub on connect, and refuses b.
    expect(await readFile(join(cDir, 'revocations.json'), 'utf8').catch(() => '[]')).not.toContain(bId)
    c = await member(cDir, { listen: true, peers })
    await waitFor('c to learn the revocation and drop b', () =>
      c.node.membership!.refuses(b.node.peerId) && !names(c).includes('b') && c.node.swarm.getConnections(b.node.peerId).length === 0)
    await expect(b.node.swarm.dial(multiaddr(c.wsAddress()))).rejects.toThrow(/revoked/)
    // And it keeps the list across restarts.
    await waitFor('c to store the revocation', async () => (await readFile(join(cDir, 'revocations.json'), 'utf8').catch(() => '')).includes('"b"'))
  })

  it('renews a certificate without downtime: the running node presents the new one before the old expires', async () => {
    const hub = await member(await joined('hub'), { listen: true })
    const authority = await Authority.open(auth)
    const first = await authority.invite({ nodeId: 'renewed', newKey: true, expiresInMs: 15_000 })
    const stateDir = join(dir, `renewed-${++counter}`)
    await joinInvite(first.token, stateDir)
    const node = await member(stateDir, { peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    await waitFor('hub to see renewed', () => names(hub).includes('renewed'))
    const connection = hub.node.swarm.getConnections(node.node.peerId)[0]!

    const renewal = await authority.invite({ nodeId: 'renewed', expiresInMs: 3_600_000 })
    expect(renewal.renewal).toBe(true)
    expect(renewal.certificate.peerId).toBe(node.node.peerId.toString())
    await joinInvite(renewal.token, stateDir)
    await waitFor('hub to hold the renewed certificate', () =>
      hub.node.membership!.certificateOf(node.node.peerId.toString())?.expiresAt === renewal.certificate.expiresAt)
    await waitFor('the first certificate to have expired', () => Date.now() > first.certificate.expiresAt + 1000, { timeoutMs: 30_000 })
    // An expiry check after the first certificate's end leaves the same connection open and the node in the view.
    await hub.node.membership!.check()
    expect(connection.status).toBe('open')
    expect(names(hub)).toContain('renewed')
  })
})

const TASK_AGENT = [process.execPath, join(import.meta.dirname, 'fixtures', 'task-agent.mjs')]

/** An agent backed by a command: answers with the task reversed. */
const ECHO_AGENT = [process.execPath, '-e', `
  let input = ''
  process.stdin.on('data', d => { input += d })
  process.stdin.on('end', () => { process.stdout.write(JSON.parse(input).task.split('').reverse().join('')) })`]

describe('per-caller policy', () => {
  it('allowFrom refuses and allows as written, against certified names and tags, over direct and relayed connections', async () => {
    const hub = await member(await joined('hub', { tags: ['public'] }), { listen: true })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const office = await member(await joined('office'), {
      peers,
      toolProxy: { enabled: true, allowFrom: ['home'] },
      agents: [{ id: 'coder', description: 'reverses', command: ECHO_AGENT, allowFrom: ['tags:ops'] }]
    })
    // home claims the tag "public" in its config; only its certificate's "ops" counts.
    const home = await member(await joined('home', { tags: ['ops'] }), { peers, tags: ['public'] })
    await waitFor('home to reach office through the relay, hub to reach it directly', () =>
      home.node.view.reachOf(office.node.peerId.toString()).reach === 'relayed' &&
      hub.node.view.reachOf(office.node.peerId.toString()).reach === 'direct' &&
      names(home).includes('office') && names(hub).includes('office'))

    // Relayed, allowed by name and by certified tag.
    const exec = await home.node.client.tool('office', 'exec', { command: 'echo allowed' })
    expect(exec.output.stdout).toBe('allowed\n')
    expect((await home.node.client.handoff('coder', 'olleh', undefined)).reply).toBe('hello')

    // Direct, refused: the rule is named, and so is the caller.
    await expect(hub.node.client.tool('office', 'exec', { command: 'echo no' }))
      .rejects.toThrow('exec on office refused for hub (toolProxy.allowFrom: [home])')
    await expect(hub.node.client.handoff('coder', 'task', undefined))
      .rejects.toThrow('a hand-off to coder on office refused for hub (agents[coder].allowFrom: [tags:ops])')
    await expect(hub.node.client.send('coder', 'hi'))
      .rejects.toThrow('a message to coder on office refused for hub (agents[coder].allowFrom: [tags:ops])')
  })
})

describe('per-caller policy on models', () => {
  it('models[].allowFrom serves an allowed caller and refuses another, naming the node and the rule', async () => {
    const upstream = new FakeOpenAIServer()
    await upstream.start()
    try {
      const hub = await member(await joined('hub'), { listen: true })
      const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
      const office = await member(await joined('office'), {
        peers,
        models: [{ id: 'm', provider: 'vllm', baseUrl: upstream.url, upstreamModel: upstream.models[0], allowFrom: ['home'] }]
      })
      const home = await member(await joined('home'), { peers })
      await waitFor('hub and home to see office\'s model', () => [hub, home].every(t =>
        t.node.view.nodes().some(n => n.nodeId === 'office' && n.models.some(m => m.id === 'm'))))
      const client = (t: TestNode): OpenAI => new OpenAI({ baseURL: `${t.node.http.url}/v1`, apiKey: 'not-needed', maxRetries: 0 })

      // Allowed, through the relay (home does not listen, office does not either).
      const served = await client(home).chat.completions.create({ model: 'clawmatrix/m', messages: [{ role: 'user', content: 'hello' }] })
      expect(served.choices[0]!.message.content).toBeTruthy()
      const calls = upstream.requests.length

      // Refused: the error names the node, the caller and the rule; the upstream never hears of it.
      const refused = await client(hub).chat.completions.create({ model: 'clawmatrix/m', messages: [{ role: 'user', content: 'hello' }] }).then(() => undefined, (err: unknown) => err)
      expect(refused).toBeInstanceOf(OpenAI.APIError)
      expect((refused as InstanceType<typeof OpenAI.APIError>).message).toContain('model m on office refused for hub (models[m].allowFrom: [home])')
      expect(upstream.requests.length).toBe(calls)
    } finally {
      await upstream.stop()
    }
  })
})

describe('callers named by their certificate', () => {
  it('a member that claims another name in a task\'s `from` is recorded and audited under its certified name', async () => {
    const office = await member(await joined('office'), { listen: true, agents: [{ id: 'worker', command: TASK_AGENT }] })
    const home = await member(await joined('home'), { peers: [{ nodeId: 'office', url: office.wsAddress() }] })
    await waitFor('home to see office', () => names(home).includes('office'))
    // What a lying member sends: a well-formed submission whose `from` names another node.
    const id = randomUUID()
    const frame = { type: 'task-submit', id, agent: 'worker', task: 'echo hi', from: 'office', session: 'agent:main:main' }
    const { exchange, first } = await home.tasks.protocol.open(office.node.peerId, frame, AbortSignal.timeout(30_000))
    await exchange.close()
    expect(first.task.id).toBe(id)
    await waitFor('the task to complete on office', () => office.tasks.executor.get(id, home.node.peerId.toString()).state === 'completed')
    const record = JSON.parse(await readFile(join(office.stateDir, 'tasks', 'executor', `${id}.json`), 'utf8'))
    expect(record.owner).toEqual({ nodeId: 'home', peerId: home.node.peerId.toString(), session: 'agent:main:main' })
    await waitFor('the task\'s audit line', async () => (await readFile(join(office.stateDir, 'audit.jsonl'), 'utf8').catch(() => '')).includes('"kind":"task"'))
    const audit = (await readFile(join(office.stateDir, 'audit.jsonl'), 'utf8')).trim().split('\n').map(line => JSON.parse(line))
    expect(audit.filter(entry => entry.kind === 'task').map(entry => entry.caller)).toEqual([{ name: 'home', peerId: home.node.peerId.toString() }])
  })
})

describe('unmanaged clusters', () => {
  it('refuse allowFrom at start: any secret holder could claim the names it lists', () => {
    const base = { nodeId: 'office', secret: 'an-unmanaged-secret-0123456789' }
    expect(() => parseConfig({ ...base, toolProxy: { enabled: true, allowFrom: ['home'] } }))
      .toThrow(/toolProxy\.allowFrom: set, but this cluster is unmanaged/)
    expect(() => parseConfig({ ...base, agents: [{ id: 'a', allowFrom: ['tags:ops'] }], models: [{ id: 'm', provider: 'p', allowFrom: ['*'] }] }))
      .toThrow(/agents\[0\]\.allowFrom: set, but .*\n.*models\[0\]\.allowFrom: set, but/)
    expect(() => parseConfig({ ...base, authority: 'ed25519:' + 'A'.repeat(43), toolProxy: { allowFrom: ['home', 'tags:ops', '*'] } })).not.toThrow()
    expect(() => parseConfig({ ...base, authority: 'ed25519:' + 'A'.repeat(43), toolProxy: { allowFrom: ['bad name'] } })).toThrow(/toolProxy\.allowFrom\[0\]/)
  })
})
