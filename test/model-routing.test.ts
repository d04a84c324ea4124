/**
 * Routing under overload and failure: maxConcurrent with 429 when the
 * cluster is full, cooldown of failing hosts, fallback chains, and token
 * usage, on real nodes with fake upstreams.
 */
import OpenAI from 'openai'
import { afterEach, describe, expect, it } from 'vitest'
import { FakeOpenAIServer } from './fixtures/fake-upstream/index.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
const fakes: Array<{ stop: () => Promise<void> }> = []
afterEach(async () => {
  await nodes.cleanup()
  await Promise.allSettled(fakes.splice(0).map(async f => { await f.stop() }))
})

// Lenient: on a loaded machine a ping through a relay can take over a second.
const beat = { intervalMs: 1000, maxMissed: 10 }
const USER = [{ role: 'user' as const, content: 'the quick brown fox' }]

async function fake (init: ConstructorParameters<typeof FakeOpenAIServer>[0] = {}): Promise<FakeOpenAIServer> {
  const server = new FakeOpenAIServer(init)
  await server.start()
  fakes.push(server)
  return server
}

function model (id: string, upstream: FakeOpenAIServer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, provider: 'vllm', baseUrl: upstream.url, upstreamModel: upstream.models[0], ...extra }
}

function client (node: TestNode): OpenAI {
  return new OpenAI({ baseURL: `${node.node.http.url}/v1`, apiKey: 'not-needed', maxRetries: 0 })
}

/** a listens; every host dials it. `a` may host models itself. */
async function cluster (a: Record<string, unknown>, hosts: Record<string, Record<string, unknown>>): Promise<{ a: TestNode, hosts: Record<string, TestNode> }> {
  const hub = await nodes.start({ nodeId: 'a', listen: true, heartbeat: beat, ...a })
  const started: Record<string, TestNode> = {}
  for (const [nodeId, config] of Object.entries(hosts)) {
    started[nodeId] = await nodes.start({ nodeId, heartbeat: beat, peers: [{ nodeId: 'a', url: hub.wsAddress() }], ...config })
  }
  await waitFor('a to see every host and its models', () =>
    Object.keys(hosts).every(id => hub.node.view.nodes().some(n => n.nodeId === id && n.reach === 'direct' && n.models.length > 0)))
  return { a: hub, hosts: started }
}

async function post (node: TestNode, body: Record<string, unknown>): Promise<{ status: number, json: any, headers: Record<string, string> }> {
  const response = await fetch(`${node.node.http.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const text = await response.text()
  return { status: response.status, json: text === '' ? undefined : JSON.parse(text), headers: Object.fromEntries(response.headers) }
}

async function getJson (node: TestNode, path: string): Promise<any> {
  return (await fetch(`${node.node.http.url}${path}`)).json()
}

async function metrics (node: TestNode): Promise<string> {
  return (await fetch(`${node.node.http.url}/metrics`)).text()
}

/** Holds every stream of a fake before its second chunk until released. */
function gate (): { beforeChunk: (i: number) => Promise<void>, open: () => void } {
  const { promise, resolve } = Promise.withResolvers<void>()
  return { beforeChunk: async i => { if (i > 0) await promise }, open: () => { resolve() } }
}

describe('model routing under load and failure', () => {
  it('sends a request past a host at maxConcurrent to another, and answers 429 with Retry-After when every host is full', async () => {
    const held = gate()
    const upstream = await fake({ reply: { chunks: ['one', ' two'], beforeChunk: held.beforeChunk } })
    const { a } = await cluster({}, {
      b: { models: [model('m', upstream, { maxConcurrent: 1 })] },
      c: { models: [model('m', upstream, { maxConcurrent: 1 })] }
    })
    const openai = client(a)

    const first = await openai.chat.completions.create({ model: 'clawmatrix/m', stream: true, messages: USER }).withResponse()
    const second = await openai.chat.completions.create({ model: 'clawmatrix/m', stream: true, messages: USER }).withResponse()
    const hosts = [first.response.headers.get('x-clawmatrix-node'), second.response.headers.get('x-clawmatrix-node')]
    expect(hosts.sort()).toEqual(['b', 'c'])

    // Both hosts hold one stream each: the cluster is full, and says so at once.
    const third = await post(a, { model: 'clawmatrix/m', stream: true, messages: USER })
    expect(third.status).toBe(429)
    expect(third.headers['retry-after']).toBe('1')
    expect(third.json.error).toMatchObject({ type: 'rate_limit_error', code: 'cluster_saturated' })
    expect(third.json.error.message).toMatch(/b: .*maxConcurrent/)
    expect(upstream.requests).toHaveLength(2)

    held.open()
    for (const { data } of [first, second]) {
      let text = ''
      for await (const chunk of data) text += chunk.choices[0]?.delta?.content ?? ''
      expect(text).toBe('one two')
    }
    // Slots free again once the answers ended.
    const fourth = await post(a, { model: 'clawmatrix/m', messages: USER })
    expect(fourth.status).toBe(200)
  })

  it('queues a request at maxConcurrent until a slot frees, answers 429 with Retry-After when the queue is full, and drops a client that left (official openai client)', async () => {
    const held = gate()
    const upstream = await fake({ reply: { chunks: ['one', ' two'], beforeChunk: held.beforeChunk } })
    const { a, hosts: { b } } = await cluster({}, { b: { models: [model('m', upstream, { maxConcurrent: 1, maxQueued: 2, queueWaitMs: 120_000 })] } })
    const load = (): { running: number, queued?: number } => b!.node.modelProxy.local.load('m')
    const openai = client(a)

    const first = await openai.chat.completions.create({ model: 'clawmatrix/m', stream: true, messages: USER })
    // b is full: the next request waits in its queue instead of failing.
    const second = openai.chat.completions.create({ model: 'clawmatrix/m', messages: USER })
    await waitFor('the second request to wait in b\'s queue', () => load().queued === 1)
    // A client that leaves while queued leaves the queue.
    const leaving = new AbortController()
    const left = openai.chat.completions.create({ model: 'clawmatrix/m', messages: USER }, { signal: leaving.signal }).catch((err: unknown) => err)
    await waitFor('the third request to queue too', () => load().queued === 2)
    // The queue is full: 429 at once, with Retry-After, never a wait into a timeout.
    const full = await openai.chat.completions.create({ model: 'clawmatrix/m', messages: USER }).catch((err: unknown) => err)
    expect(full).toBeInstanceOf(OpenAI.RateLimitError)
    expect((full as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toBe('1')
    expect((full as Error).message).toMatch(/b: .*2 of 2 queued/)
    leaving.abort()
    expect(await left).toBeInstanceOf(OpenAI.APIUserAbortError)
    await waitFor('the request that left to leave b\'s queue', () => load().queued === 1)
    expect(upstream.requests).toHaveLength(1)

    held.open()
    let text = ''
    for await (const chunk of first) text += chunk.choices[0]?.delta?.content ?? ''
    expect(text).toBe('one two')
    // The slot the first answer freed went to the queued request.
    expect((await second).choices[0]?.message.content).toBe('one two')
    expect(upstream.requests).toHaveLength(2)
    expect(load()).toMatchObject({ running: 0, queued: 0 })
  })

  it('answers 429 once a queued request waited queueWaitMs without a slot', async () => {
    const held = gate()
    const upstream = await fake({ reply: { chunks: ['one', ' two'], beforeChunk: held.beforeChunk } })
    // a hosts the model itself: the local path queues the same way.
    const { a } = await cluster({ models: [model('m', upstream, { maxConcurrent: 1, maxQueued: 1, queueWaitMs: 200 })] }, {})
    const openai = client(a)
    const first = await openai.chat.completions.create({ model: 'm', stream: true, messages: USER })
    const waited = await openai.chat.completions.create({ model: 'm', messages: USER }).catch((err: unknown) => err)
    expect(waited).toBeInstanceOf(OpenAI.RateLimitError)
    expect((waited as Error).message).toMatch(/waited 200 ms in the queue of model "m"/)
    expect(a.node.modelProxy.local.load('m')).toMatchObject({ running: 1, queued: 0 })
    held.open()
    for await (const _ of first);
    expect(upstream.requests).toHaveLength(1)
  })

  it('answers routing from a cached candidate list until the view changes', async () => {
    const upstream = await fake()
    const { a } = await cluster({}, { b: { models: [model('m', upstream)] } })
    const view = a.node.view
    const first = view.resolveModel('m')
    expect(first.map(c => c.nodeId)).toEqual(['b'])
    // Unchanged view: the same list, not every node described again.
    expect(view.resolveModel('m')).toBe(first)

    // A new host's card changes the view: the next request sees it at once, not after the cache's age limit.
    let listed: string[] = []
    const c = await nodes.start({ nodeId: 'c', heartbeat: beat, peers: [{ nodeId: 'a', url: a.wsAddress() }], models: [model('m', upstream)] })
    // Polled often, so the cached list is always fresh when the card arrives.
    await waitFor('a to accept c\'s card', () => {
      listed = view.resolveModel('m').map(candidate => candidate.nodeId)
      return view.card(c.node.swarm.peerId.toString()) != null
    }, { intervalMs: 5 })
    expect(listed.sort()).toEqual(['b', 'c'])
    expect((await post(a, { model: 'clawmatrix/m', messages: USER })).status).toBe(200)
  })

  it('skips a host that failed three requests in a row until its cooldown ends, and shows it in status and metrics', async () => {
    const broken = await fake({ reply: { fail: { status: 500, message: 'the GPU fell over' } } })
    const working = await fake()
    // a hosts the model itself, so it is always tried first while it is not cooling down.
    const { a } = await cluster({ models: [model('m', broken)], modelRouting: { cooldownFailures: 3, cooldownMs: 6_000 } }, {
      c: { models: [model('m', working)] }
    })

    for (let i = 1; i <= 3; i++) {
      const answer = await post(a, { model: 'm', messages: USER })
      expect(answer.status).toBe(200)
      expect(answer.headers['x-clawmatrix-node']).toBe('c')
      expect(broken.requests).toHaveLength(i)
    }
    const status = await getJson(a, '/clawmatrix/status')
    expect(status.modelRouting.cooldowns).toEqual([expect.objectContaining({ model: 'm', nodeId: 'a', failures: 3, coolingUntil: expect.any(String) })])
    expect(await metrics(a)).toMatch(/clawmatrix_model_host_cooling\{model="m",host="a"\} 1/)

    const skipped = await post(a, { model: 'm', messages: USER })
    expect(skipped.headers['x-clawmatrix-node']).toBe('c')
    expect(broken.requests).toHaveLength(3)

    await waitFor('the cooldown to end', async () => (await getJson(a, '/clawmatrix/status')).modelRouting.cooldowns.every((row: any) => row.coolingUntil == null), { timeoutMs: 30_000, intervalMs: 200 })
    const retried = await post(a, { model: 'm', messages: USER })
    expect(retried.headers['x-clawmatrix-node'], JSON.stringify(retried.json ?? retried)).toBe('c')
    expect(broken.requests).toHaveLength(4)
  })

  it('serves from the second model of a fallback chain when no host of the first can, and says which model served', async () => {
    const broken = await fake({ reply: { fail: { status: 503, message: 'overloaded' } } })
    const small = await fake({ models: ['small-upstream'] })
    const { a } = await cluster({}, {
      b: { models: [model('big', broken, { fallbacks: ['small'] })] },
      c: { models: [model('small', small)] }
    })

    const whole = await post(a, { model: 'clawmatrix/big', messages: USER })
    expect(whole.status).toBe(200)
    expect(whole.headers['x-clawmatrix-model']).toBe('small')
    expect(whole.headers['x-clawmatrix-node']).toBe('c')
    expect(whole.json.model).toBe('small')
    expect(whole.json.choices[0].message.content).toBe('fox brown quick the')

    const { data: stream, response } = await client(a).chat.completions.create({ model: 'clawmatrix/big', stream: true, messages: USER }).withResponse()
    expect(response.headers.get('x-clawmatrix-model')).toBe('small')
    const models = new Set<string>()
    let text = ''
    for await (const chunk of stream) {
      models.add(chunk.model)
      text += chunk.choices[0]?.delta?.content ?? ''
    }
    expect([...models]).toEqual(['small'])
    expect(text).toBe('fox brown quick the')

    // A chain named in the request itself, for a model nobody hosts; the option never reaches an upstream.
    const named = await post(a, { model: 'clawmatrix/huge', messages: USER, clawmatrix: { fallbacks: ['clawmatrix/small'] } })
    expect(named.status).toBe(200)
    expect(named.headers['x-clawmatrix-model']).toBe('small')
    expect(small.requests.every(r => r.body.clawmatrix === undefined)).toBe(true)

    // The model asked for answers itself when it can, under its upstream's name.
    const direct = await post(a, { model: 'clawmatrix/small', messages: USER })
    expect(direct.headers['x-clawmatrix-model']).toBe('small')
    expect(direct.json.model).toBe('small-upstream')

    const bad = await post(a, { model: 'clawmatrix/big', messages: USER, clawmatrix: { fallbacks: 'small' } })
    expect(bad.status).toBe(400)
    expect(bad.json.error.param).toBe('clawmatrix.fallbacks')
  })

  it('counts tokens per model, host and caller from the upstream\'s usage, over a relay, and strips usage the client did not ask for', async () => {
    const upstream = await fake()
    const relay = await nodes.start({ nodeId: 'relay', listen: true, heartbeat: beat })
    const peers = [{ nodeId: 'relay', url: relay.wsAddress() }]
    const c = await nodes.start({ nodeId: 'c', heartbeat: beat, peers, models: [model('m', upstream)] })
    const a = await nodes.start({ nodeId: 'a', heartbeat: beat, peers })
    await waitFor('a to reach c through the relay', () => a.node.view.nodes().some(n => n.nodeId === 'c' && n.reach === 'relayed'))
    const openai = client(a)

    const whole = await openai.chat.completions.create({ model: 'clawmatrix/m', messages: USER })
    const withUsage = await openai.chat.completions.create({ model: 'clawmatrix/m', stream: true, stream_options: { include_usage: true }, messages: USER })
    let streamed: OpenAI.CompletionUsage | undefined
    for await (const chunk of withUsage) streamed = chunk.usage ?? streamed
    const without = await openai.chat.completions.create({ model: 'clawmatrix/m', stream: true, messages: USER })
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
    for await (const chunk of without) chunks.push(chunk)

    expect(streamed).toBeDefined()
    // The host asked for usage, and the client that did not ask got no usage-only chunk.
    expect(upstream.requests[2]!.body.stream_options).toEqual({ include_usage: true })
    expect(chunks.every(chunk => chunk.choices.length > 0)).toBe(true)

    const input = whole.usage!.prompt_tokens + 2 * streamed!.prompt_tokens
    const output = whole.usage!.completion_tokens + 2 * streamed!.completion_tokens
    expect((await getJson(a, '/clawmatrix/usage')).requested).toEqual([{ model: 'm', host: 'c', caller: 'a', input, output, requests: 3 }])
    expect((await getJson(c, '/clawmatrix/usage')).served).toEqual([{ model: 'm', host: 'c', caller: 'a', input, output, requests: 3 }])
    expect(await metrics(a)).toContain(`clawmatrix_model_tokens_total{model="m",host="c",caller="a",kind="input"} ${input}`)
    expect(await metrics(c)).toContain(`clawmatrix_model_tokens_total{model="m",host="c",caller="a",kind="output"} ${output}`)
  })
})
