/**
 * Model streams kept open between requests (`modelRouting.reuseStreams`,
 * `/clawmatrix/model/1.1.0`): real nodes on loopback, the official `openai`
 * client, a fake upstream. Each check counts the model streams on both ends
 * of the connection, so a stream opened per request or left behind shows.
 */
import OpenAI from 'openai'
import { afterEach, describe, expect, it } from 'vitest'
import { FakeOpenAIServer } from './fixtures/fake-upstream/index.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import type { Connection, Stream } from '@libp2p/interface'
import { stepper } from './helpers/stepper.js'

const nodes = testNodes()
const fakes: FakeOpenAIServer[] = []
afterEach(async () => {
  await nodes.cleanup()
  await Promise.allSettled(fakes.splice(0).map(async f => { await f.stop() }))
})

const beat = { intervalMs: 1000, maxMissed: 3 }
const USER = [{ role: 'user' as const, content: 'the quick brown fox' }]
const REUSE = '/clawmatrix/model/1.1.0'
const LEGACY = '/clawmatrix/model/1.0.0'
const IDLE_PER_HOST = 3

async function fakeUpstream (init?: ConstructorParameters<typeof FakeOpenAIServer>[0]): Promise<FakeOpenAIServer> {
  const fake = new FakeOpenAIServer(init)
  await fake.start()
  fakes.push(fake)
  return fake
}

function client (node: TestNode): OpenAI {
  return new OpenAI({ baseURL: `${node.node.http.url}/v1`, apiKey: 'not-needed', maxRetries: 0 })
}

/** a (the caller, reusing streams) listens; c hosts `chat` and dials it. */
async function pair (fake: FakeOpenAIServer, routing: Record<string, unknown> = {}, stateDir?: string): Promise<{ a: TestNode, c: TestNode }> {
  const a = await nodes.start({ nodeId: 'a', listen: true, heartbeat: beat, modelRouting: { reuseStreams: true, idleStreamsPerHost: IDLE_PER_HOST, ...routing } })
  const c = await host(a, fake, stateDir)
  return { a, c }
}

async function host (a: TestNode, fake: FakeOpenAIServer, stateDir?: string): Promise<TestNode> {
  const c = await nodes.start({ nodeId: 'c', heartbeat: beat, peers: [{ nodeId: 'a', url: a.wsAddress() }], models: [{ id: 'chat', provider: 'vllm', baseUrl: fake.url, upstreamModel: fake.models[0] }] }, stateDir)
  await waitFor('a to reach c directly', () => a.node.view.nodes().some(n => n.nodeId === 'c' && n.reach === 'direct'))
  return c
}

/** The open model streams `node` has to or from `other`, by protocol. */
function modelStreams (node: TestNode, other: TestNode, protocol = REUSE): Stream[] {
  return node.node.swarm.getConnections(other.node.swarm.peerId)
    .flatMap(connection => connection.streams)
    .filter(stream => stream.protocol === protocol && stream.status === 'open')
}

async function streamedText (stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<string> {
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  return text
}

async function ask (node: TestNode, content = 'the quick brown fox'): Promise<string> {
  return streamedText(await client(node).chat.completions.create({ model: 'chat', stream: true, messages: [{ role: 'user', content }] }))
}

describe('model streams reused between requests', () => {
  it('carries one request after another on one stream, whole, through the official client', async () => {
    const fake = await fakeUpstream()
    const { a, c } = await pair(fake)
    for (let i = 0; i < 5; i++) {
      expect(await ask(a)).toBe('fox brown quick the')
      // Non-streamed answers travel the same stream.
      expect((await client(a).chat.completions.create({ model: 'chat', messages: USER })).choices[0]!.message.content).toBe('fox brown quick the')
    }
    expect(fake.requests).toHaveLength(10)
    expect(fake.requests.every(r => r.outcome === 'completed')).toBe(true)
    // One stream carried all ten: the pool holds it, the host waits on it for the next request.
    expect(a.node.modelProxy.protocol.pool!.idleCounts()).toEqual({ [c.node.swarm.peerId.toString()]: 1 })
    expect(modelStreams(a, c)).toHaveLength(1)
    expect(modelStreams(c, a)).toHaveLength(1)
    expect(modelStreams(a, c, LEGACY)).toHaveLength(0)
    // The status route lists the kept streams by node name.
    const status = await (await fetch(`${a.node.http.url}/clawmatrix/status`)).json() as { modelRouting: { keptStreams?: Record<string, number> } }
    expect(status.modelRouting.keptStreams).toEqual({ c: 1 })
  })

  it('cancels one request mid-stream on a reused stream; the host stops its upstream and the next request is whole', async () => {
    const step = stepper()
    const fake = await fakeUpstream()
    const { a, c } = await pair(fake)
    expect(await ask(a)).toBe('fox brown quick the')
    const kept = modelStreams(a, c)
    expect(kept).toHaveLength(1)

    fake.reply = { chunks: ['one', ' two', ' three'], beforeChunk: step.beforeChunk }
    const controller = new AbortController()
    const stream = await client(a).chat.completions.create({ model: 'chat', stream: true, messages: USER }, { signal: controller.signal })
    const it = stream[Symbol.asyncIterator]()
    let first = ''
    while (first === '') first = (await it.next()).value?.choices[0]?.delta?.content ?? ''
    expect(first).toBe('one')
    // The request took the kept stream rather than a new one.
    expect(modelStreams(a, c)).toEqual(kept)
    controller.abort()
    await it.next().catch(() => undefined)
    expect(await fake.requests[1]!.ended).toBe('client-closed')
    step.release(1)
    step.release(2)

    // A cancelled request's stream is not reused: it closes on both ends.
    await waitFor('the cancelled stream to close on both ends', () => !kept.some(s => s.status === 'open') && modelStreams(c, a).length === 0)
    fake.reply = {}
    expect(await ask(a)).toBe('fox brown quick the')
    expect(modelStreams(a, c)).toHaveLength(1)
  })

  it('carries many concurrent requests over a bounded pool, each whole and in order, and closes idle streams', async () => {
    const fake = await fakeUpstream()
    const { a, c } = await pair(fake, { idleStreamMs: 500 })
    const contents = Array.from({ length: 24 }, (_, i) => `word${i} and number ${i}`)
    for (let round = 0; round < 2; round++) {
      // Every answer waits after its first chunk until all 24 requests reached the upstream: 24 streams at once.
      const allIn = Promise.withResolvers<void>()
      fake.reply = { beforeChunk: async i => { if (i > 0) await allIn.promise } }
      const asked = Promise.all(contents.map(async content => ask(a, content)))
      await waitFor('all requests to reach the upstream', () => fake.requests.length === (round + 1) * contents.length)
      expect(modelStreams(a, c).length).toBe(contents.length)
      allIn.resolve()
      const answers = await asked
      // The fake answers with the words reversed: each answer is its own request's, whole.
      expect(answers).toEqual(contents.map(content => content.split(' ').reverse().join(' ')))
      // Streams beyond the pool's room closed once their request ended.
      await waitFor('the pool to keep at most its room', () => modelStreams(a, c).length <= IDLE_PER_HOST && modelStreams(c, a).length <= IDLE_PER_HOST)
      expect(Object.values(a.node.modelProxy.protocol.pool!.idleCounts())).toEqual([IDLE_PER_HOST])
    }
    // Idle streams close after idleStreamMs, on both ends.
    await waitFor('idle streams to close', () => modelStreams(a, c).length === 0 && modelStreams(c, a).length === 0, { timeoutMs: 30_000 })
    expect(a.node.modelProxy.protocol.pool!.idleCounts()).toEqual({})
    expect(await ask(a)).toBe('fox brown quick the')
  })

  it('keeps a burst\'s streams by default, so the next burst opens none and closes none', async () => {
    const fake = await fakeUpstream()
    // The default room (modelRouting.idleStreamsPerHost), not the small one of the other checks.
    const a = await nodes.start({ nodeId: 'a', listen: true, heartbeat: beat })
    const c = await host(a, fake)
    const contents = Array.from({ length: 24 }, (_, i) => `burst${i} word ${i}`)
    const burst = async (): Promise<Set<string>> => {
      const allIn = Promise.withResolvers<void>()
      fake.reply = { beforeChunk: async i => { if (i > 0) await allIn.promise } }
      const before = fake.requests.length
      const asked = Promise.all(contents.map(async content => ask(a, content)))
      await waitFor('the whole burst to reach the upstream', () => fake.requests.length === before + contents.length)
      const ids = new Set(modelStreams(a, c).map(stream => stream.id))
      allIn.resolve()
      expect(await asked).toEqual(contents.map(content => content.split(' ').reverse().join(' ')))
      return ids
    }
    const first = await burst()
    expect(first.size).toBe(contents.length)
    // Every stream of the burst waits in the pool, on both ends.
    expect(Object.values(a.node.modelProxy.protocol.pool!.idleCounts())).toEqual([contents.length])
    await waitFor('the host to wait on every stream', () => modelStreams(c, a).length === contents.length)
    const second = await burst()
    expect(second).toEqual(first)
    expect(modelStreams(a, c, LEGACY)).toHaveLength(0)
  })

  it('replaces a kept stream that died while idle, without the client noticing', async () => {
    const fake = await fakeUpstream()
    const { a, c } = await pair(fake)
    expect(await ask(a)).toBe('fox brown quick the')
    const [hostSide] = modelStreams(c, a)
    const [callerSide] = modelStreams(a, c)
    // The host resets the idle stream; the request that follows may meet it before the reset arrives.
    hostSide!.abort(new Error('test: the host dropped the stream'))
    expect(await ask(a)).toBe('fox brown quick the')
    await waitFor('the dead stream to be gone', () => callerSide!.status !== 'open')
    const [replacement] = modelStreams(a, c)
    expect(replacement).toBeDefined()
    expect(replacement!.id).not.toBe(callerSide!.id)

    // A kept stream that dies as the request arrives (the reset crosses it): the caller
    // retries once on a new stream. The host drops the stream before serving (a test hook
    // in its admission step), so nothing reached the upstream on the dead one.
    let drops = 1
    const protocol = c.node.modelProxy.protocol as unknown as { admit?: (request: unknown, connection: Connection) => unknown }
    protocol.admit = (_request, connection) => {
      if (drops-- > 0) {
        for (const stream of connection.streams) if (stream.protocol === REUSE) stream.abort(new Error('test: dropped under a request'))
        return { code: 'test', message: 'dropped' }
      }
      return undefined
    }
    expect(await ask(a)).toBe('fox brown quick the')
    expect(drops).toBe(-1)
    expect(modelStreams(a, c)).toHaveLength(1)
    expect(modelStreams(a, c)[0]!.id).not.toBe(replacement!.id)
    expect(fake.requests).toHaveLength(3)
    expect(fake.requests.every(r => r.outcome === 'completed')).toBe(true)
  })

  it('survives a host restart: the next request opens a fresh stream to the restarted host', async () => {
    const fake = await fakeUpstream()
    const { a, c } = await pair(fake)
    expect(await ask(a)).toBe('fox brown quick the')
    expect(modelStreams(a, c)).toHaveLength(1)
    await c.node.stop()
    await waitFor('the kept stream to be dropped', () => Object.keys(a.node.modelProxy.protocol.pool!.idleCounts()).length === 0)
    const again = await host(a, fake, c.stateDir)
    expect(again.node.swarm.peerId.equals(c.node.swarm.peerId)).toBe(true)
    expect(await ask(a)).toBe('fox brown quick the')
    expect(modelStreams(a, again)).toHaveLength(1)
  })

  it('asks a host that speaks only /clawmatrix/model/1.0.0 with a stream per request, as before', async () => {
    const fake = await fakeUpstream()
    const { a, c } = await pair(fake)
    // An older host: it does not offer the reuse protocol.
    await c.node.swarm.unhandle(REUSE)
    for (let i = 0; i < 3; i++) expect(await ask(a)).toBe('fox brown quick the')
    expect(fake.requests).toHaveLength(3)
    expect(a.node.modelProxy.protocol.pool!.idleCounts()).toEqual({})
    await waitFor('no model stream left open', () => modelStreams(a, c, LEGACY).length === 0 && modelStreams(a, c).length === 0)
  })

  it('is on by default and falls back per peer: a host that speaks only 1.0.0 gets a stream per request, a new one keeps its stream', async () => {
    const fake = await fakeUpstream()
    // a: no modelRouting at all. c: a current host. d: an older host, without the reuse protocol from the start.
    const a = await nodes.start({ nodeId: 'a', listen: true, heartbeat: beat })
    const c = await host(a, fake)
    const d = await nodes.start({ nodeId: 'd', heartbeat: beat, peers: [{ nodeId: 'a', url: a.wsAddress() }], models: [{ id: 'chat-old', provider: 'vllm', baseUrl: fake.url, upstreamModel: fake.models[0] }] })
    await d.node.swarm.unhandle(REUSE)
    await waitFor('a to reach d directly', () => a.node.view.nodes().some(n => n.nodeId === 'd' && n.reach === 'direct'))
    expect(a.node.modelProxy.protocol.pool).toBeDefined()

    const askOld = async (): Promise<string> => streamedText(await client(a).chat.completions.create({ model: 'chat-old', stream: true, messages: USER }))
    for (let i = 0; i < 3; i++) {
      expect(await ask(a)).toBe('fox brown quick the')
      expect(await askOld()).toBe('fox brown quick the')
    }
    expect(fake.requests).toHaveLength(6)
    expect(fake.requests.every(r => r.outcome === 'completed')).toBe(true)
    // c: one kept stream carried its three requests. d: a stream each, none kept, none left open.
    expect(a.node.modelProxy.protocol.pool!.idleCounts()).toEqual({ [c.node.swarm.peerId.toString()]: 1 })
    expect(modelStreams(a, c)).toHaveLength(1)
    expect(modelStreams(a, c, LEGACY)).toHaveLength(0)
    await waitFor('no model stream to d left open', () => modelStreams(a, d, LEGACY).length === 0 && modelStreams(d, a, LEGACY).length === 0)
    expect(modelStreams(a, d)).toHaveLength(0)
  })

  it('does not let an idle kept stream hold an on-demand connection open: the idle closer closes it, the pool lets the stream go', async () => {
    const fake = await fakeUpstream()
    // a and c know only the hub (a listening node, so their relay); a reaches c through it for its first
    // request. Kept streams would outlive the test (an hour).
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: beat })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const a = await nodes.start({ nodeId: 'a', heartbeat: beat, peers, mesh: { idleCloseMs: 500 }, modelRouting: { idleStreamMs: 3_600_000 } })
    const c = await nodes.start({ nodeId: 'c', heartbeat: beat, peers, models: [{ id: 'chat', provider: 'vllm', baseUrl: fake.url, upstreamModel: fake.models[0] }] })
    await waitFor('a to learn of c', () => a.node.view.nodes().some(n => n.nodeId === 'c' && n.reach === 'relayed'))
    expect(await ask(a)).toBe('fox brown quick the')
    const [kept] = modelStreams(a, c)
    expect(kept).toBeDefined()
    expect(a.node.modelProxy.protocol.pool!.isIdle(kept!)).toBe(true)

    await waitFor('the idle connection to c to close', () => a.node.swarm.getConnections(c.node.swarm.peerId).length === 0, { timeoutMs: 30_000 })
    await waitFor('the pool to let the stream go', () => Object.keys(a.node.modelProxy.protocol.pool!.idleCounts()).length === 0)
    expect(kept!.status).not.toBe('open')
    await waitFor('c to let its end go', () => modelStreams(c, a).length === 0)
    // The next request dials again and opens a fresh stream.
    expect(await ask(a)).toBe('fox brown quick the')
    expect(modelStreams(a, c)).toHaveLength(1)
  })

  it('does not let a kept stream waiting on the host hold the host\'s on-demand connection open', async () => {
    const fake = await fakeUpstream()
    // a and c know only the hub. c asks a first, so c opened the connection (through the hub); a's request to c
    // then rides it, and its kept stream waits on c, the connection's opener, for the next request.
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: beat })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    const model = (id: string): Record<string, unknown> => ({ id, provider: 'vllm', baseUrl: fake.url, upstreamModel: fake.models[0] })
    const a = await nodes.start({ nodeId: 'a', heartbeat: beat, peers, models: [model('chat-a')], modelRouting: { idleStreamMs: 3_600_000 } })
    const c = await nodes.start({ nodeId: 'c', heartbeat: beat, peers, models: [model('chat')], mesh: { idleCloseMs: 500 } })
    await waitFor('a and c to learn of each other', () => a.node.view.nodes().some(n => n.nodeId === 'c' && n.reach === 'relayed') && c.node.view.nodes().some(n => n.nodeId === 'a' && n.reach === 'relayed'))
    expect(await streamedText(await client(c).chat.completions.create({ model: 'chat-a', stream: true, messages: USER }))).toBe('fox brown quick the')
    expect(c.node.swarm.getConnections(a.node.swarm.peerId).map(connection => connection.direction)).toEqual(['outbound'])
    expect(await ask(a)).toBe('fox brown quick the')
    const [waiting] = modelStreams(c, a).filter(stream => stream.direction === 'inbound')
    expect(waiting).toBeDefined()
    await waitFor('c to wait on a\'s stream', () => c.node.modelProxy.protocol.isWaiting(waiting!))

    await waitFor('c to close the idle connection', () => c.node.swarm.getConnections(a.node.swarm.peerId).length === 0, { timeoutMs: 30_000 })
    await waitFor('a to let its kept stream go', () => Object.keys(a.node.modelProxy.protocol.pool!.idleCounts()).length === 0)
    // a's next request reaches c again, on a fresh connection and stream.
    expect(await ask(a)).toBe('fox brown quick the')
  })

  it('leaves no stream behind after churn: completed, cancelled and refused requests, then the idle timeout', async () => {
    const fake = await fakeUpstream()
    const { a, c } = await pair(fake, { idleStreamMs: 300 })
    const openai = client(a)
    await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      if (i % 3 === 0) {
        // Cancelled after the first chunk.
        const controller = new AbortController()
        const stream = await openai.chat.completions.create({ model: 'chat', stream: true, messages: USER }, { signal: controller.signal })
        for await (const _ of stream) { controller.abort(); break }
        return
      }
      if (i % 3 === 1) {
        // Refused by the host (no such model there) before the first byte: 404 through the proxy? The cluster knows no such model.
        const refused = await a.node.modelProxy.protocol.request(c.node.swarm.peerId, { type: 'model', model: 'other', route: 'chat/completions', body: {} }, AbortSignal.timeout(10_000)).catch((err: unknown) => err)
        expect(refused).toMatchObject({ code: 'no-such-model' })
        return
      }
      expect(await ask(a)).toBe('fox brown quick the')
    }))
    await waitFor('every model stream closed on both ends', () =>
      modelStreams(a, c).length === 0 && modelStreams(c, a).length === 0 && modelStreams(a, c, LEGACY).length === 0 && modelStreams(c, a, LEGACY).length === 0, { timeoutMs: 30_000 })
    expect(a.node.modelProxy.protocol.pool!.idleCounts()).toEqual({})
  })
})
