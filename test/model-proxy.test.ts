import { request as httpRequest, type IncomingMessage } from 'node:http'
import { peerIdFromString } from '@libp2p/peer-id'
import OpenAI from 'openai'
import { afterEach, describe, expect, it } from 'vitest'
import { FakeAnthropicServer, FakeOpenAIServer } from './fixtures/fake-upstream/index.js'
import { HostRefusedError, LocalModels, ModelStreamProtocol } from '../src/services/model-proxy/index.js'
import { libp2pComponents, type ProtocolComponents } from '../src/services/wire/components.js'
import { UpstreamError } from '../src/services/models/index.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import { stepper } from './helpers/stepper.js'

const nodes = testNodes()
const fakes: Array<{ stop: () => Promise<void> }> = []
afterEach(async () => {
  await nodes.cleanup()
  await Promise.allSettled(fakes.splice(0).map(async f => { await f.stop() }))
})

const beat = { intervalMs: 1000, maxMissed: 3 }
const USER = [{ role: 'user' as const, content: 'the quick brown fox' }]

async function started<T extends { start: () => Promise<void>, stop: () => Promise<void> }> (fake: T): Promise<T> {
  await fake.start()
  fakes.push(fake)
  return fake
}

/** An OpenAI model entry served by a fake upstream. */
function openaiModel (id: string, fake: FakeOpenAIServer): Record<string, unknown> {
  return { id, provider: 'vllm', baseUrl: fake.url, upstreamModel: fake.models[0] }
}

/** The official client, pointed at a node's proxy; no retries, so every failure shows. */
function client (node: TestNode): OpenAI {
  return new OpenAI({ baseURL: `${node.node.http.url}/v1`, apiKey: 'not-needed', maxRetries: 0 })
}

/** a -> relay <- c: both ends dial out only, so a reaches c through the relay. */
async function relayedHost (models: Array<Record<string, unknown>>): Promise<{ a: TestNode, relay: TestNode, c: TestNode }> {
  const relay = await nodes.start({ nodeId: 'relay', listen: true, heartbeat: beat })
  const peers = [{ nodeId: 'relay', url: relay.wsAddress() }]
  const c = await nodes.start({ nodeId: 'c', heartbeat: beat, peers, models })
  const a = await nodes.start({ nodeId: 'a', heartbeat: beat, peers })
  await waitFor('a to reach c through the relay', () => a.node.view.nodes().some(n => n.nodeId === 'c' && n.reach === 'relayed'))
  return { a, relay, c }
}

/** a listens; every host dials it, so each is reached directly. */
async function directHosts (a: Record<string, unknown>, hosts: Record<string, Array<Record<string, unknown>>>, heartbeat = beat): Promise<Record<string, TestNode>> {
  const hub = await nodes.start({ nodeId: 'a', listen: true, heartbeat, ...a })
  const out: Record<string, TestNode> = { a: hub }
  for (const [nodeId, models] of Object.entries(hosts)) {
    out[nodeId] = await nodes.start({ nodeId, heartbeat, peers: [{ nodeId: 'a', url: hub.wsAddress() }], models })
  }
  await waitFor('a to reach every host directly', () =>
    Object.keys(hosts).every(id => hub.node.view.nodes().some(n => n.nodeId === id && n.reach === 'direct')))
  return out
}

/** The next non-empty content delta of a chat stream. */
async function nextContent (it: AsyncIterator<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<string> {
  while (true) {
    const { value, done } = await it.next()
    if (done === true) throw new Error('the stream ended')
    const content = value.choices[0]?.delta?.content
    if (content != null && content !== '') return content
  }
}

async function streamedText (stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<{ text: string, finish?: string | null }> {
  let text = ''
  let finish: string | null | undefined
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? ''
    finish ??= chunk.choices[0]?.finish_reason
  }
  return { text, finish }
}

async function bodyText (body: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = []
  for await (const part of body) parts.push(part)
  return Buffer.concat(parts).toString()
}

/** A raw HTTP exchange with a node's proxy, for what the client library hides. */
async function post (node: TestNode, path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number, json: any, headers: IncomingMessage['headers'] }> {
  const response = await fetch(`${node.node.http.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  const text = await response.text()
  return { status: response.status, json: text === '' ? undefined : JSON.parse(text), headers: Object.fromEntries(response.headers) }
}

/** A POST whose body goes out in chunked encoding, without a content-length, 64 KiB a write. */
async function postChunked (node: TestNode, path: string, body: Buffer): Promise<{ status: number, json: any }> {
  return await new Promise((resolve, reject) => {
    const request = httpRequest(`${node.node.http.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' } }, response => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, json: text === '' ? undefined : JSON.parse(text) }) })
      response.on('error', reject)
    })
    request.on('error', reject)
    for (let at = 0; at < body.byteLength; at += 64 * 1024) request.write(body.subarray(at, at + 64 * 1024))
    request.end()
  })
}

describe('model proxy over the mesh', () => {
  it('streams a chat answer from a host behind a relay, chunk by chunk, with the request passed through', async () => {
    const step = stepper()
    const fake = await started(new FakeOpenAIServer({ reply: { chunks: ['alpha', ' beta', ' gamma', ' delta'], beforeChunk: step.beforeChunk } }))
    const { a } = await relayedHost([openaiModel('chat', fake)])

    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
    const stream = await client(a).chat.completions.create({ model: 'clawmatrix/chat', stream: true, messages: USER, temperature: 0.25, tools })
    const it = stream[Symbol.asyncIterator]()

    // The first chunk arrives while the fake still holds the second: nothing waits for the whole answer.
    expect(await nextContent(it)).toBe('alpha')
    expect(fake.requests[0]!.chunksWritten).toBe(1)
    for (const [i, expected] of [' beta', ' gamma', ' delta'].entries()) {
      step.release(i + 1)
      expect(await nextContent(it)).toBe(expected)
      expect(fake.requests[0]!.chunksWritten).toBe(i + 2)
    }
    let finish: string | null | undefined
    for (let r = await it.next(); r.done !== true; r = await it.next()) finish ??= r.value.choices[0]?.finish_reason
    expect(finish).toBe('stop')
    expect(await fake.requests[0]!.ended).toBe('completed')

    // What the client sent reached the upstream, with the upstream's model name.
    expect(fake.requests[0]!.body).toMatchObject({ model: 'fake-model', stream: true, temperature: 0.25, messages: USER, tools })
  })

  it('answers whole (non-streamed) chat requests with tool calls, through the relay', async () => {
    const fake = await started(new FakeOpenAIServer({ reply: { chunks: [], toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] } }))
    const { a } = await relayedHost([openaiModel('chat', fake)])
    const { data, response } = await client(a).chat.completions.create({ model: 'chat', messages: USER }).withResponse()
    expect(response.headers.get('x-clawmatrix-node')).toBe('c')
    expect(data.choices[0]!.finish_reason).toBe('tool_calls')
    expect(data.choices[0]!.message.tool_calls?.[0]).toMatchObject({ type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } })
  })

  it('streams from an Anthropic upstream as OpenAI chunks, incrementally', async () => {
    const step = stepper()
    const fake = await started(new FakeAnthropicServer({ reply: { chunks: ['Bonjour', ' le', ' monde'], beforeChunk: step.beforeChunk } }))
    const { a } = await relayedHost([{ id: 'claude', provider: 'anthropic', baseUrl: fake.url, upstreamModel: 'fake-claude' }])
    const stream = await client(a).chat.completions.create({ model: 'clawmatrix/claude', stream: true, messages: USER, max_tokens: 100 })
    const it = stream[Symbol.asyncIterator]()
    expect(await nextContent(it)).toBe('Bonjour')
    expect(fake.requests[0]!.chunksWritten).toBe(1)
    step.release(1)
    expect(await nextContent(it)).toBe(' le')
    step.release(2)
    expect(await nextContent(it)).toBe(' monde')
    expect(fake.requests[0]!.body).toMatchObject({ model: 'fake-claude', stream: true, max_tokens: 100 })
  })

  it('lists the cluster\'s models and forwards embeddings and completions', async () => {
    const fake = await started(new FakeOpenAIServer())
    const t = await directHosts({ models: [openaiModel('local-one', fake)] }, { c: [openaiModel('embed', fake), openaiModel('chat', fake)] })
    const a = t.a!
    await waitFor('a to see c\'s models', () => a.node.view.nodes().some(n => n.nodeId === 'c' && n.models.length === 2))

    const list = await client(a).models.list()
    expect(list.data.map(m => [m.id, (m as any).clawmatrix.nodes])).toEqual([['chat', ['c']], ['embed', ['c']], ['local-one', ['a']]])
    expect(list.data[0]).toMatchObject({ object: 'model', owned_by: 'vllm' })

    const embeddings = await client(a).embeddings.create({ model: 'clawmatrix/embed', input: ['one', 'two'] })
    expect(embeddings.data.map(e => e.embedding.length)).toEqual([8, 8])
    const completion = await client(a).completions.create({ model: 'chat', prompt: 'one two three' })
    expect(completion.choices[0]!.text).toBe('three two one')
    expect(fake.requests.map(r => r.path)).toEqual(['/v1/embeddings', '/v1/completions'])
  })

  it('serves a model the node hosts itself without the mesh, and fails over to the next host when its upstream is down', async () => {
    const dead = await started(new FakeOpenAIServer())
    const deadUrl = dead.url
    await dead.stop()
    const good = await started(new FakeOpenAIServer())
    const t = await directHosts({ models: [{ id: 'shared', provider: 'vllm', baseUrl: deadUrl, upstreamModel: 'fake-model' }] }, { c: [openaiModel('shared', good)] })
    const a = t.a!
    await waitFor('a to see c host the model', () => a.node.view.resolveModel('shared').length === 2)
    expect(a.node.view.resolveModel('shared').map(c => [c.nodeId, c.reach])).toEqual([['a', 'self'], ['c', 'direct']])

    // a's own upstream refuses before the first byte, so c takes the request.
    const { data, response } = await client(a).chat.completions.create({ model: 'shared', messages: USER }).withResponse()
    expect(data.choices[0]!.message.content).toBe('fox brown quick the')
    expect(response.headers.get('x-clawmatrix-node')).toBe('c')
    expect(good.requests).toHaveLength(1)

    // The local path: c asks for its own model and is answered without a stream.
    const local = await client(t.c!).chat.completions.create({ model: 'shared', messages: USER }).withResponse()
    expect(local.response.headers.get('x-clawmatrix-node')).toBe('c')
    expect(good.requests).toHaveLength(2)

    // The node's metrics count each side of it, and the failover.
    const metrics = async (node: TestNode): Promise<string> => (await fetch(`${node.node.http.url}/metrics`)).text()
    const model = 'protocol="/clawmatrix/model/1.0.0"'
    await waitFor('c to count the request it served', async () => (await metrics(t.c!)).includes(`clawmatrix_requests_total{${model},direction="inbound",outcome="ok"} 1`))
    const onA = await metrics(a)
    expect(onA).toContain(`clawmatrix_requests_total{${model},direction="outbound",outcome="ok"} 1`)
    expect(onA).toContain(`clawmatrix_failovers_total{${model}} 1`)
  })

  it('keeps its connection to an upstream between requests and closes it when the node stops', async () => {
    const fake = await started(new FakeOpenAIServer())
    // The upstream would keep an idle connection for a minute: only the node can close it within the wait.
    fake.keepAliveTimeout = 60_000
    // ... and so would the node, but for its stop.
    const a = await nodes.start({ nodeId: 'a', heartbeat: beat, models: [openaiModel('m', fake)] }, undefined, { modelProxy: { upstream: { idleSocketMs: 60_000 } } })
    for (let i = 0; i < 2; i++) {
      const stream = await client(a).chat.completions.create({ model: 'm', messages: USER, stream: true })
      expect((await streamedText(stream)).finish).toBe('stop')
    }
    await waitFor('the node to keep a connection to the upstream', () => fake.openConnections === 1)
    await a.node.stop()
    await waitFor('the stopped node\'s connections to the upstream to be closed', () => fake.openConnections === 0, { timeoutMs: 10_000 })
  })

  it('closes an idle connection to an upstream after its node\'s modelProxy.upstream.idleSocketMs', async () => {
    // Two nodes, each with its own upstream that would keep an idle connection for a minute.
    const keeping = await started(new FakeOpenAIServer())
    const closing = await started(new FakeOpenAIServer())
    keeping.keepAliveTimeout = closing.keepAliveTimeout = 60_000
    const a = await nodes.start({ nodeId: 'a', heartbeat: beat, models: [openaiModel('m', keeping)] }, undefined, { modelProxy: { upstream: { idleSocketMs: 60_000 } } })
    const b = await nodes.start({ nodeId: 'b', heartbeat: beat, models: [openaiModel('m', closing)] }, undefined, { modelProxy: { upstream: { idleSocketMs: 150 } } })
    // a's connection goes idle first: were both nodes on one idle time, it would be closed first too.
    for (const [node, fake] of [[a, keeping], [b, closing]] as const) {
      const stream = await client(node).chat.completions.create({ model: 'm', messages: USER, stream: true })
      expect((await streamedText(stream)).finish).toBe('stop')
      await waitFor(`${node.node.config.nodeId} to keep its connection to the upstream`, () => fake.openConnections === 1)
    }
    await waitFor('b to close its idle connection to the upstream', () => closing.openConnections === 0, { timeoutMs: 10_000 })
    expect(keeping.openConnections).toBe(1)
  })

  it('fails over when the first host\'s node is gone, and answers 503 when no host is left', async () => {
    const fakeB = await started(new FakeOpenAIServer())
    const fakeC = await started(new FakeOpenAIServer())
    const t = await directHosts({}, { b: [openaiModel('m', fakeB)], c: [openaiModel('m', fakeC)] })
    const a = t.a!
    // The view as a request saw it, just before its first host died.
    const candidates = a.node.view.resolveModel('m')
    expect(candidates.map(c => c.nodeId).sort()).toEqual(['b', 'c'])
    const [first, second] = candidates
    await t[first!.nodeId]!.node.stop()

    const proxy = a.node.modelProxy.proxy
    const answer = await proxy.forward(candidates, { model: 'm', route: 'chat/completions', body: { model: 'm', messages: USER } })
    expect(answer.host.nodeId).toBe(second!.nodeId)
    expect(answer.failovers).toBe(1)
    expect(JSON.parse(await bodyText(answer.body)).choices[0].message.content).toBe('fox brown quick the')

    await t[second!.nodeId]!.node.stop()
    const failure = await proxy.forward(candidates, { model: 'm', route: 'chat/completions', body: { model: 'm', messages: USER } }).catch((err: unknown) => err)
    expect(failure).toBeInstanceOf(UpstreamError)
    expect(failure).toMatchObject({ status: 503, body: { error: { code: 'no_host_available' } } })
    expect((failure as Error).message).toMatch(/no host of model "m" could take the request: [bc]: .*; [bc]: /)
  })

  it('answers 503 over HTTP when the only host is in the view but unreachable', async () => {
    const fake = await started(new FakeOpenAIServer())
    // Slow heartbeats keep c's card in a's view for a while after c went silent.
    const slow = { intervalMs: 5000, maxMissed: 3 }
    // c's relay is r, not a: a relay drops a member that vanished from it at once (docs/cluster.md), and a
    // must keep c's card for this test. c holds its one reservation on r before a connects to it.
    const r = await nodes.start({ nodeId: 'r', listen: true, heartbeat: slow })
    const c = await nodes.start({ nodeId: 'c', listen: true, heartbeat: slow, peers: [{ nodeId: 'r', url: r.wsAddress() }], models: [openaiModel('m', fake)] })
    const viaR = `/p2p/${r.node.peerId.toString()}/p2p-circuit`
    await waitFor('c to hold its reservation on r', () => c.node.swarm.getMultiaddrs().some(ma => ma.toString().includes(viaR)))
    const a = await nodes.start({ nodeId: 'a', listen: true, heartbeat: slow, peers: [{ nodeId: 'c', url: c.wsAddress() }] })
    await waitFor('a to see c', () => a.node.view.nodes().some(n => n.nodeId === 'c' && n.reach === 'direct'))
    expect(a.node.view.card(c.node.peerId.toString())?.addresses.filter(address => address.includes('/p2p-circuit')).every(address => address.includes(viaR))).toBe(true)
    // Killed, not stopped: no leave announcement, its listener gone.
    await c.node.swarm.stop()
    // Still in the view, reach as its card says (direct, on demand), but no connection any more.
    await waitFor('a to lose c', () => a.node.view.nodes().some(n => n.nodeId === 'c' && !n.connected))

    const { status, json } = await post(a, '/v1/chat/completions', JSON.stringify({ model: 'm', messages: USER }))
    expect(status).toBe(503)
    expect(json.error).toMatchObject({ type: 'server_error', code: 'no_host_available' })
    // Every address's reason in words: c's own (gone) and the circuit through r (which dropped it).
    expect(json.error.message).toBe('no host of model "m" could take the request: c: cannot open a model stream to c: ' +
      'the connection failed; the relay holds no reservation for it (it is not connected to that relay)')
  })

  it('cancels the upstream request when the client leaves mid-stream', async () => {
    const step = stepper()
    const fake = await started(new FakeOpenAIServer({ reply: { chunks: ['one', ' two', ' three'], beforeChunk: step.beforeChunk } }))
    const { a, c } = await relayedHost([openaiModel('chat', fake)])
    const stream = await client(a).chat.completions.create({ model: 'chat', stream: true, messages: USER })
    const it = stream[Symbol.asyncIterator]()
    expect(await nextContent(it)).toBe('one')
    stream.controller.abort()
    expect(await fake.requests[0]!.ended).toBe('client-closed')
    expect(fake.requests[0]!.chunksWritten).toBe(1)
    await waitFor('the host to release the request', () => c.node.modelProxy.local.running === 0)
    await waitFor('the requester to forget it', () => a.node.view.nodes().every(n => n.inFlight === 0))
  })

  it('ends a stream whose upstream died mid-answer with an error, never as a short success', async () => {
    const fake = await started(new FakeOpenAIServer({ reply: { chunks: ['one', ' two', ' three', ' four'], dieAfterChunks: 2 } }))
    const { a } = await relayedHost([openaiModel('chat', fake)])
    const stream = await client(a).chat.completions.create({ model: 'chat', stream: true, messages: USER })
    let text = ''
    const failure = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    })().catch((err: unknown) => err)
    expect(text).toBe('one two')
    expect(failure).toBeInstanceOf(OpenAI.APIError)
    expect((failure as Error).message).toMatch(/upstream connection broke/)

    // Not streamed: the cut is seen before the first byte, so the status says it.
    const whole = await client(a).chat.completions.create({ model: 'chat', messages: USER }).catch((err: unknown) => err)
    expect(whole).toMatchObject({ status: 502 })
  })

  it('ends a stream with an error when the host node goes away mid-answer', async () => {
    const step = stepper()
    const fake = await started(new FakeOpenAIServer({ reply: { chunks: ['one', ' two'], beforeChunk: step.beforeChunk } }))
    const { a, c } = await relayedHost([openaiModel('chat', fake)])
    const stream = await client(a).chat.completions.create({ model: 'chat', stream: true, messages: USER })
    const it = stream[Symbol.asyncIterator]()
    expect(await nextContent(it)).toBe('one')
    await c.node.swarm.stop()
    const failure = await nextContent(it).catch((err: unknown) => err)
    expect(failure).toBeInstanceOf(OpenAI.APIError)
    expect((failure as Error).message).toMatch(/the answer from .* was cut before its end/)
    step.release(1)
  })

  it('keeps a quiet answer alive with keep-alives, and cuts one whose host fell silent', async () => {
    const step = stepper()
    const fake = await started(new FakeOpenAIServer({ reply: { chunks: ['one', ' two'], beforeChunk: step.beforeChunk } }))
    const t = await directHosts({}, { c: [] })
    const models = new LocalModels({ models: [{ id: 'm', provider: 'vllm', dialect: 'openai', baseUrl: fake.url, upstreamModel: 'fake-model' }], logger: t.c!.node.swarm.logger })
    await models.start()
    const host = t.c!.node.swarm
    // Protocols with short timers, beside the nodes' own (another prefix, so another protocol id).
    const protocol = (swarm: typeof host, prefix: string, keepAliveIntervalMs: number): ModelStreamProtocol =>
      new ModelStreamProtocol(libp2pComponents(swarm), { models, protocolPrefix: prefix, keepAliveIntervalMs, idleTimeoutMs: 200 })
    const request = { type: 'model' as const, model: 'm', route: 'chat/completions' as const, body: { stream: true, messages: USER } }
    const hosting = [protocol(host, 'chatty', 20), protocol(host, 'quiet', 60_000)]
    await Promise.all(hosting.map(async p => { await p.start() }))
    try {
      const answer = await protocol(t.a!.node.swarm, 'chatty', 20).request(host.peerId, request, AbortSignal.timeout(20_000))
      const chunks = answer.body[Symbol.asyncIterator]()
      let text = ''
      while (!text.includes('"content":"one"')) text += new TextDecoder().decode((await chunks.next()).value)
      // The upstream stays silent for five of the caller's idle windows; keep-alives carry the stream.
      const silentFrom = Date.now()
      await waitFor('five idle windows of silence', () => Date.now() - silentFrom > 1_000)
      step.release(1)
      let rest = ''
      for (let r = await chunks.next(); r.done !== true; r = await chunks.next()) rest += new TextDecoder().decode(r.value)
      expect(rest).toMatch(/"content":" two"[\s\S]*data: \[DONE\]\n\n$/)

      // The same silence without keep-alives: the caller gives up, and the host's upstream request is cancelled.
      const held = stepper()
      fake.reply = { chunks: ['one', ' two'], beforeChunk: held.beforeChunk }
      const quiet = await protocol(t.a!.node.swarm, 'quiet', 60_000).request(host.peerId, request, AbortSignal.timeout(20_000))
      const failure = await (async () => { for await (const _ of quiet.body); })().catch((err: unknown) => err)
      expect(failure).toMatchObject({ status: 502, message: expect.stringMatching(/was cut before its end: no frame from \w+ for 200 ms/) })
      expect(await fake.requests[1]!.ended).toBe('client-closed')
    } finally {
      step.release(1)
      await Promise.all(hosting.map(async p => { await p.stop() }))
      await models.stop()
    }
  })

  it('sends the answer with its first chunk at once, ahead of the chunks that were at hand behind it', async () => {
    const t = await directHosts({}, { c: [] })
    const host = t.c!.node.swarm
    // What the host sends on its model streams, message by message.
    const messages: string[] = []
    const components = libp2pComponents(host)
    const recording: ProtocolComponents = {
      ...components,
      registrar: {
        ...components.registrar,
        handle: async (protocol, handler, options) => {
          await components.registrar.handle(protocol, async (stream, connection) => {
            const send = stream.send.bind(stream)
            stream.send = data => {
              messages.push(new TextDecoder().decode(data.subarray()))
              return send(data)
            }
            await handler(stream, connection)
          }, options)
        }
      }
    }
    // An upstream whose whole answer is at hand at once, as a fast one's often is in one read; its first
    // piece comes a tick later, as a Node stream's does (its 'readable' event is a nextTick).
    const events = ['first', 'second', 'third'].map(word => `data: ${word}\n\n`)
    const models = {
      refusal: () => undefined,
      load: () => ({ running: 0 }),
      request: async () => ({
        status: 200,
        contentType: 'text/event-stream',
        body: (async function * () {
          await new Promise(resolve => process.nextTick(resolve))
          for (const event of events) yield new TextEncoder().encode(event)
        })()
      })
    } as unknown as LocalModels
    const hosting = new ModelStreamProtocol(recording, { models, protocolPrefix: 'first-byte' })
    await hosting.start()
    try {
      const request = { type: 'model' as const, model: 'm', route: 'chat/completions' as const, body: { stream: true, messages: USER } }
      const answer = await new ModelStreamProtocol(libp2pComponents(t.a!.node.swarm), { models, protocolPrefix: 'first-byte' })
        .request(host.peerId, request, AbortSignal.timeout(20_000))
      let text = ''
      for await (const chunk of answer.body) text += new TextDecoder().decode(chunk)
      expect(text).toBe(events.join(''))
      // The answer and its first chunk in one message; the chunks behind it in the next (batched to the end of
      // the turn, the first chunk went out only with the rest; sent at the end of the promise jobs, the answer went alone).
      const first = messages.find(message => message.includes('"type":"answer"'))
      expect(first).toContain('data: first')
      expect(first).not.toContain('data: second')
    } finally {
      await hosting.stop()
    }
  })

  it('carries 20 concurrent streams through the relay, each whole and in order', async () => {
    const fake = await started(new FakeOpenAIServer({ reply: { delayMs: 5 } }))
    const { a } = await relayedHost([openaiModel('chat', fake)])
    const openai = client(a)
    const questions = Array.from({ length: 20 }, (_, i) => `stream number ${i} of twenty`)
    const answers = await Promise.all(questions.map(async q =>
      streamedText(await openai.chat.completions.create({ model: 'chat', stream: true, messages: [{ role: 'user', content: q }] }))))
    expect(answers).toEqual(questions.map(q => ({ text: q.split(' ').reverse().join(' '), finish: 'stop' })))
    expect(fake.requests.every(r => r.outcome === 'completed')).toBe(true)
  })

  it('holds back-pressure end to end: a client that stops reading stops the upstream', async () => {
    const CHUNKS = 400
    const big = 'x'.repeat(64 * 1024)
    const fake = await started(new FakeOpenAIServer({ reply: { chunks: Array.from({ length: CHUNKS }, () => big) } }))
    // Liveness is not what this test is about: on a loaded machine 25 MiB through one connection can
    // delay its pings past a 3 s budget, and a dropped connection would end the answer early.
    const t = await directHosts({}, { c: [openaiModel('chat', fake)] }, { intervalMs: 5000, maxMissed: 6 })
    const a = t.a!

    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${a.node.http.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, resolve)
      req.once('error', reject)
      req.end(JSON.stringify({ model: 'chat', stream: true, messages: USER }))
    })
    response.pause()
    // 25 MiB are far more than the buffers on the path hold: with the client not reading, the
    // upstream must come to a stop part-way. Without back-pressure it would write everything.
    const upstream = await fake.nthRequest(1)
    let last = -1
    let still = 0
    await waitFor('the upstream to stop writing', () => {
      still = upstream.chunksWritten === last ? still + 1 : 0
      last = upstream.chunksWritten
      return still >= 10
    }, { intervalMs: 50, timeoutMs: 30_000 })
    expect(upstream.stalls).toBeGreaterThan(0)
    expect(upstream.outcome).toBeUndefined()
    expect(upstream.chunksWritten).toBeLessThan(CHUNKS)

    let bytes = 0
    let tail = ''
    for await (const chunk of response) {
      bytes += chunk.length
      tail = (tail + String(chunk)).slice(-100)
    }
    expect(bytes).toBeGreaterThan(CHUNKS * big.length)
    expect(tail.endsWith('data: [DONE]\n\n')).toBe(true)
    expect(await upstream.ended).toBe('completed')
  })
})

describe('model proxy HTTP endpoint', () => {
  it('answers unknown models with 404 listing the cluster\'s models', async () => {
    const fake = await started(new FakeOpenAIServer())
    const t = await directHosts({}, { c: [openaiModel('chat', fake), openaiModel('embed', fake)] })
    const failure = await client(t.a!).chat.completions.create({ model: 'gpt-nope', messages: USER }).catch((err: unknown) => err)
    expect(failure).toBeInstanceOf(OpenAI.NotFoundError)
    expect(failure).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' })
    expect((failure as Error).message).toMatch(/unknown model "gpt-nope": the cluster offers chat, embed/)
  })

  it('passes an upstream refusal through with its status, without trying other hosts', async () => {
    const fake = await started(new FakeOpenAIServer({ reply: { fail: { status: 400, message: 'messages: too long', type: 'invalid_request_error' } } }))
    const t = await directHosts({}, { c: [openaiModel('chat', fake)] })
    const failure = await client(t.a!).chat.completions.create({ model: 'chat', messages: USER }).catch((err: unknown) => err)
    expect(failure).toMatchObject({ status: 400, message: expect.stringMatching(/messages: too long/) })
  })

  it('refuses bad bodies clearly: not JSON 400, no model 400, too large 413', async () => {
    const t = await directHosts({}, {})
    const a = t.a!
    const notJson = await post(a, '/v1/chat/completions', '{"model": ')
    expect(notJson).toMatchObject({ status: 400, json: { error: { message: expect.stringMatching(/not valid JSON/), type: 'invalid_request_error', param: null, code: 'invalid_request' } } })
    // One error model: the work routes answer the same mistake with the same status and body.
    const work = await post(a, '/clawmatrix/handoff', '{"model": ')
    expect({ status: work.status, json: work.json }).toEqual({ status: notJson.status, json: notJson.json })
    expect(await post(a, '/v1/chat/completions', '{"messages": []}')).toMatchObject({ status: 400, json: { error: { param: 'model' } } })
    const huge = Buffer.alloc(9 * 1024 * 1024, 'a')
    expect(await post(a, '/v1/embeddings', huge)).toMatchObject({ status: 413, json: { error: { code: 'request_too_large', message: expect.stringMatching(/limit of 8388608 bytes/) } } })
    // Without a declared length the limit is found while reading: still a 413 the client gets, not a cut connection.
    expect(await postChunked(a, '/v1/embeddings', huge)).toMatchObject({ status: 413, json: { error: { code: 'request_too_large', message: expect.stringMatching(/exceeds the limit of 8388608 bytes/) } } })
    expect(await post(a, '/v1/chat/completions', '{"messages": []}')).toMatchObject({ status: 400 })
  })

  it('asks for the bearer token when one is configured', async () => {
    const fake = await started(new FakeOpenAIServer())
    const token = 'proxy-token-for-tests-0123'
    const a = await nodes.start({ nodeId: 'a', proxyToken: token, models: [openaiModel('chat', fake)] })
    const denied = await client(a).models.list().catch((err: unknown) => err)
    expect(denied).toMatchObject({ status: 401, code: 'invalid_api_key' })
    const open = new OpenAI({ baseURL: `${a.node.http.url}/v1`, apiKey: token, maxRetries: 0 })
    expect((await open.chat.completions.create({ model: 'chat', messages: USER })).choices[0]!.message.content).toBe('fox brown quick the')
    expect(JSON.stringify(fake.requests[0]!.headers)).not.toContain(token)
  })

  it('a host refuses a model it does not serve before the first byte; a node without the protocol is unreachable', async () => {
    const fake = await started(new FakeOpenAIServer())
    const t = await directHosts({}, { c: [openaiModel('chat', fake)] })
    const c = t.a!.node.view.resolveModel('chat')[0]!
    const refusal = await t.a!.node.modelProxy.protocol.request(peerIdFromString(c.peerId), { type: 'model', model: 'other', route: 'chat/completions', body: {} }, AbortSignal.timeout(10_000))
      .catch((err: unknown) => err)
    expect(refusal).toBeInstanceOf(HostRefusedError)
    expect(refusal).toMatchObject({ code: 'no-such-model', message: 'model "other" is not hosted here (this node serves chat)' })

    // A node that does not speak the protocol (another version, say) is unreachable for it, not a hang;
    // the caller asked for both versions in one negotiation.
    const other = new ModelStreamProtocol(libp2pComponents(t.a!.node.swarm), { models: t.a!.node.modelProxy.local, protocolPrefix: 'clawmatrix-next' })
    const unspoken = await other.request(peerIdFromString(c.peerId), { type: 'model', model: 'chat', route: 'chat/completions', body: {} }, AbortSignal.timeout(10_000))
      .catch((err: unknown) => err)
    expect(unspoken).toMatchObject({ code: 'unreachable', message: expect.stringMatching(/could not negotiate \/clawmatrix-next\/model\/1\.1\.0,\/clawmatrix-next\/model\/1\.0\.0/) })
    expect(fake.requests).toHaveLength(0)
  })
})
