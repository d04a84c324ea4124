import { createServer, type Server } from 'node:http'
import { createServer as createNetServer, type Socket } from 'node:net'
import OpenAI from 'openai'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createUpstream, parseSse, resolveUpstreamTarget, SseParser, toAnthropicRequest, UpstreamConnections, UpstreamError,
  type ModelResponse, type ModelUpstream, type SseEvent
} from '../src/services/models/index.js'
import { FakeAnthropicServer, fakeEmbedding, FakeOpenAIServer } from './fixtures/fake-upstream/index.js'
import { startDemoModel } from '../src/cli/demo-model.js'
import type { ModelConfig } from '../src/config/schema.js'
import { nodeLogger } from '../src/node/logging.js'
import { waitFor } from './helpers/wait.js'

const KEY = 'sk-test-upstream-key-0123456789'
/** The adapters log as a node would; these tests run none. */
const logger = nodeLogger('upstream-test')

/** A gate a fake awaits before one chunk: the test holds the stream there. */
function gateAt (index: number): { beforeChunk: (i: number) => Promise<void>, reached: Promise<void>, release: () => void } {
  const reached = Promise.withResolvers<void>()
  const released = Promise.withResolvers<void>()
  return {
    beforeChunk: async i => {
      if (i !== index) return
      reached.resolve()
      await released.promise
    },
    reached: reached.promise,
    release: () => { released.resolve() }
  }
}

async function text (body: AsyncIterable<Uint8Array>): Promise<string> {
  let out = ''
  const decoder = new TextDecoder()
  for await (const chunk of body) out += decoder.decode(chunk, { stream: true })
  return out
}

function events (stream: string): SseEvent[] {
  const parser = new SseParser()
  return [...parser.push(stream), ...parser.end()]
}

/** The JSON chunks of an OpenAI stream, and whether it ended with [DONE]. */
function chunksOf (stream: string): { chunks: any[], done: boolean } {
  const all = events(stream)
  const done = all.at(-1)?.data === '[DONE]'
  return { chunks: all.filter(e => e.data !== '[DONE]').map(e => JSON.parse(e.data)), done }
}

function contentOf (chunks: any[]): string {
  return chunks.map(c => c.choices[0]?.delta?.content ?? '').join('')
}

/** Reassembles streamed tool calls the way an OpenAI client does. */
function toolCallsOf (chunks: any[]): Array<{ id: string, name: string, arguments: string }> {
  const calls: Array<{ id: string, name: string, arguments: string }> = []
  for (const chunk of chunks) {
    for (const delta of chunk.choices[0]?.delta?.tool_calls ?? []) {
      const call = calls[delta.index] ??= { id: '', name: '', arguments: '' }
      if (delta.id != null) call.id = delta.id
      if (delta.function?.name != null) call.name = delta.function.name
      call.arguments += delta.function?.arguments ?? ''
    }
  }
  return calls
}

async function all<T> (iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = []
  for await (const item of iterable) items.push(item)
  return items
}

async function * source<T> (items: T[]): AsyncGenerator<T> {
  yield * items
}

async function rejection (promise: Promise<unknown>): Promise<any> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

/**
 * Reads a response to its end and returns what arrived and how it ended, so
 * a test sees both the partial answer and the error.
 */
async function drain (response: ModelResponse): Promise<{ text: string, error?: any }> {
  let out = ''
  try {
    for await (const chunk of response.body) out += Buffer.from(chunk).toString('utf8')
    return { text: out }
  } catch (error) {
    return { text: out, error }
  }
}

/**
 * A minimal stand-in for the proxy's HTTP endpoint, serving one adapter, so
 * the official OpenAI client can judge the adapter's output.
 */
async function serveAdapter (upstream: ModelUpstream): Promise<{ url: string, close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      let raw = ''
      for await (const chunk of req) raw += String(chunk)
      const controller = new AbortController()
      res.on('close', () => { if (!res.writableFinished) controller.abort() })
      try {
        const route = req.url!.replace(/^\/v1\//, '') as any
        const response = await upstream.request({ route, body: JSON.parse(raw), signal: controller.signal })
        res.writeHead(response.status, { 'content-type': response.contentType })
        for await (const chunk of response.body) res.write(chunk)
        res.end()
      } catch (err: any) {
        if (err instanceof UpstreamError && !res.headersSent) {
          res.writeHead(err.status, { 'content-type': 'application/json' }).end(JSON.stringify(err.body))
        } else {
          res.destroy()
        }
      }
    })()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}/v1`,
    close: async () => {
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  }
}

describe('SSE parser', () => {
  it('parses events split anywhere, across CRLF pairs and UTF-8 sequences', () => {
    const wire = Buffer.from(': keep-alive\r\nevent: delta\r\ndata: {"t":"héllo"}\r\n\r\ndata: a\ndata: b\n\ndata: [DONE]\n\n')
    const whole = events(wire.toString('utf8'))
    for (let cut = 1; cut < wire.length; cut++) {
      const parser = new SseParser()
      const got = [...parser.push(wire.subarray(0, cut)), ...parser.push(wire.subarray(cut)), ...parser.end()]
      expect(got, `cut at byte ${cut}`).toEqual(whole)
    }
    expect(whole).toEqual([{ event: 'delta', data: '{"t":"héllo"}' }, { data: 'a\nb' }, { data: '[DONE]' }])
  })

  it('dispatches a last event whose blank line never came, but not a half line', async () => {
    expect(await all(parseSse(source(['data: [DONE]\n'])))).toEqual([{ data: '[DONE]' }])
    expect(await all(parseSse(source(['data: {"a":1}\n\ndata: {"b"'])))).toEqual([{ data: '{"a":1}' }])
  })

  it('refuses an event larger than the limit', () => {
    const parser = new SseParser({ maxEventBytes: 100 })
    expect(() => parser.push(`data: ${'x'.repeat(200)}`)).toThrow(/exceeded 100 bytes/)
  })
})

describe('fake OpenAI upstream, judged by the official openai client', () => {
  let fake: FakeOpenAIServer
  let client: OpenAI

  beforeEach(async () => {
    fake = new FakeOpenAIServer({ apiKey: KEY })
    await fake.start()
    client = new OpenAI({ baseURL: fake.url, apiKey: KEY, maxRetries: 0 })
  })
  afterEach(async () => { await fake.stop() })

  it('streams the built-in model word by word and answers whole', async () => {
    const stream = await client.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'one two three' }], stream: true, stream_options: { include_usage: true } })
    const deltas: string[] = []
    let finish: string | null = null
    let usage: OpenAI.CompletionUsage | undefined | null
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) deltas.push(chunk.choices[0].delta.content)
      finish = chunk.choices[0]?.finish_reason ?? finish
      usage = chunk.usage ?? usage
    }
    expect(deltas).toEqual(['three', ' two', ' one'])
    expect(finish).toBe('stop')
    expect(usage?.completion_tokens).toBe(3)

    const whole = await client.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'one two three' }] })
    expect(whole.choices[0]?.message.content).toBe('three two one')
    expect(whole.usage?.total_tokens).toBe(whole.usage!.prompt_tokens + 3)
  })

  it('streams tool calls the client reassembles', async () => {
    fake.reply = { chunks: [], toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } }] }
    const stream = client.chat.completions.stream({
      model: 'fake-model',
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
    })
    const final = await stream.finalChatCompletion()
    expect(final.choices[0]?.finish_reason).toBe('tool_calls')
    const call = final.choices[0]?.message.tool_calls?.[0]
    expect(call?.type === 'function' && call.function.name).toBe('get_weather')
    expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ city: 'Paris', unit: 'celsius' })
  })

  it('serves embeddings (base64 by default in the client, floats on request), completions and models', async () => {
    const embedded = await client.embeddings.create({ model: 'fake-model', input: ['alpha', 'beta'] })
    expect(embedded.data.map(d => d.embedding)).toEqual([fakeEmbedding('alpha', 8), fakeEmbedding('beta', 8)])
    const floats = await client.embeddings.create({ model: 'fake-model', input: 'alpha', encoding_format: 'float', dimensions: 3 })
    expect(floats.data[0]?.embedding).toEqual(fakeEmbedding('alpha', 3))

    const completion = await client.completions.create({ model: 'fake-model', prompt: 'a b' })
    expect(completion.choices[0]?.text).toBe('b a')
    expect((await client.models.list()).data.map(m => m.id)).toEqual(['fake-model'])
  })

  it('answers errors the client raises as APIError with status and message', async () => {
    fake.reply = { fail: { status: 429, message: 'Rate limit reached', type: 'rate_limit_error' } }
    const err = await rejection(client.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'x' }] }))
    expect(err).toBeInstanceOf(OpenAI.APIError)
    expect(err.status).toBe(429)
    expect(err.message).toMatch(/Rate limit reached/)

    const missing = await rejection(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }))
    expect(missing.status).toBe(404)
    expect(missing.code).toBe('model_not_found')
    const unauthorised = await rejection(new OpenAI({ baseURL: fake.url, apiKey: 'wrong', maxRetries: 0 }).models.list())
    expect(unauthorised.status).toBe(401)
  })

  it('records a request the client aborted mid-stream as client-closed', async () => {
    const gate = gateAt(1)
    fake.reply = { beforeChunk: gate.beforeChunk }
    const controller = new AbortController()
    const stream = await client.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'a b c' }], stream: true }, { signal: controller.signal })
    await gate.reached
    controller.abort()
    // the client ends its iteration quietly on abort
    await all(stream).catch(() => [])
    expect(await fake.requests[0]!.ended).toBe('client-closed')
  })
})

describe('OpenAI dialect adapter', () => {
  let fake: FakeOpenAIServer
  let upstream: ModelUpstream

  beforeEach(async () => {
    fake = new FakeOpenAIServer({ apiKey: KEY, models: ['llama3:8b'] })
    await fake.start()
    upstream = createUpstream({ baseUrl: fake.url, dialect: 'openai', apiKey: KEY, upstreamModel: 'llama3:8b' }, { logger })
  })
  afterEach(async () => { await fake.stop() })

  it('passes the body through with the upstream model name and streams it incrementally', async () => {
    const gate = gateAt(2)
    fake.reply = { chunks: ['Hel', 'lo', ' wor', 'ld'], beforeChunk: gate.beforeChunk }
    const body = {
      model: 'cluster-llama',
      stream: true,
      temperature: 0.3,
      top_p: 0.9,
      seed: 7,
      vendor_extension: { keep: true },
      messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }],
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }]
    }
    const response = await upstream.request({ route: 'chat/completions', body })
    expect(response.contentType).toBe('text/event-stream')

    const iterator = response.body[Symbol.asyncIterator]()
    let received = ''
    while (!received.includes('"lo"')) {
      const next = await iterator.next()
      expect(next.done).toBe(false)
      received += Buffer.from(next.value!).toString('utf8')
    }
    // the first chunks are here while the upstream is held before its third
    await gate.reached
    expect(fake.requests[0]!.outcome).toBeUndefined()
    expect(contentOf(chunksOf(received).chunks)).toBe('Hello')

    gate.release()
    while (true) {
      const next = await iterator.next()
      if (next.done === true) break
      received += Buffer.from(next.value).toString('utf8')
    }
    const { chunks, done } = chunksOf(received)
    expect(done).toBe(true)
    expect(contentOf(chunks)).toBe('Hello world')
    expect(chunks.at(-1).choices[0].finish_reason).toBe('stop')
    expect(await fake.requests[0]!.ended).toBe('completed')

    const sent = fake.requests[0]!
    expect(sent.path).toBe('/v1/chat/completions')
    expect(sent.headers.authorization).toBe(`Bearer ${KEY}`)
    expect(sent.body).toEqual({ ...body, model: 'llama3:8b' })
  })

  it('answers non-streamed requests, embeddings and completions whole', async () => {
    const whole = await upstream.request({ route: 'chat/completions', body: { model: 'x', messages: [{ role: 'user', content: 'a b' }] } })
    expect(whole.contentType).toBe('application/json')
    expect(JSON.parse(await text(whole.body)).choices[0].message.content).toBe('b a')

    const embedded = await upstream.request({ route: 'embeddings', body: { model: 'x', input: 'alpha' } })
    expect(JSON.parse(await text(embedded.body)).data[0].embedding).toEqual(fakeEmbedding('alpha', 8))

    const completion = await upstream.request({ route: 'completions', body: { model: 'x', prompt: 'c d', stream: true } })
    const { chunks, done } = chunksOf(await text(completion.body))
    expect(done).toBe(true)
    expect(chunks.map(c => c.choices[0].text).join('')).toBe('d c')
  })

  it('passes streamed tool calls through', async () => {
    fake.reply = { chunks: [], toolCalls: [{ name: 'lookup', arguments: { q: 'libp2p' } }, { name: 'lookup', arguments: { q: 'yamux' } }] }
    const response = await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'find' }] } })
    const { chunks, done } = chunksOf(await text(response.body))
    expect(done).toBe(true)
    expect(toolCallsOf(chunks).map(c => [c.name, JSON.parse(c.arguments)])).toEqual([['lookup', { q: 'libp2p' }], ['lookup', { q: 'yamux' }]])
    expect(chunks.at(-1).choices[0].finish_reason).toBe('tool_calls')
  })

  it('surfaces an upstream error status with its OpenAI error body', async () => {
    fake.reply = { fail: { status: 429, message: 'Rate limit reached for requests', type: 'rate_limit_error' } }
    const err = await rejection(upstream.request({ route: 'chat/completions', body: { model: 'x', messages: [{ role: 'user', content: 'a' }] } }))
    expect(err).toBeInstanceOf(UpstreamError)
    expect(err.toJSON()).toEqual({ status: 429, body: { error: { message: 'Rate limit reached for requests', type: 'rate_limit_error', param: null, code: null } } })
  })

  it('never passes the key on, even when the upstream echoes it', async () => {
    const wrongKey = 'sk-wrong-key-do-not-leak-987654'
    const leaky = createUpstream({ baseUrl: fake.url, dialect: 'openai', apiKey: wrongKey, upstreamModel: 'llama3:8b' }, { logger })
    const err = await rejection(leaky.request({ route: 'chat/completions', body: { model: 'x', messages: [{ role: 'user', content: 'a' }] } }))
    expect(err.status).toBe(401)
    expect(err.message).toContain('[redacted]')
    expect(JSON.stringify(err.toJSON()) + err.message + String(err.stack)).not.toContain(wrongKey)
  })

  it('refuses to follow a redirect, which would carry the key elsewhere', async () => {
    const redirecting = createServer((_req, res) => { res.writeHead(307, { location: `${fake.url}/chat/completions?token=abc` }).end() })
    await new Promise<void>(resolve => redirecting.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = redirecting.address() as { port: number }
      const err = await rejection(createUpstream({ baseUrl: `http://127.0.0.1:${port}/v1`, dialect: 'openai', apiKey: KEY, upstreamModel: 'llama3:8b' }, { logger })
        .request({ route: 'chat/completions', body: { messages: [{ role: 'user', content: 'a' }] } }))
      expect(err.status).toBe(502)
      expect(err.message).toBe(`the upstream redirected (307 to ${fake.url}/chat/completions); set baseUrl to the final URL`)
      expect(fake.requests).toHaveLength(0)
    } finally {
      redirecting.closeAllConnections()
      await new Promise(resolve => redirecting.close(resolve))
    }
  })

  it('turns an upstream that dies mid-stream into an error after the chunks that arrived', async () => {
    fake.reply = { chunks: ['a', 'b', 'c', 'd'], dieAfterChunks: 2 }
    const response = await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] } })
    const { text: partial, error } = await drain(response)
    expect(error).toBeInstanceOf(UpstreamError)
    expect(error.status).toBe(502)
    expect(error.type).toBe('upstream_stream_cut')
    expect(chunksOf(partial).done).toBe(false)
    expect(contentOf(chunksOf(partial).chunks)).toBe('ab')
    expect(await fake.requests[0]!.ended).toBe('died')
  })

  it('takes a clean close before the answer finished as a cut, and a finished stream without [DONE] as complete', async () => {
    fake.reply = { chunks: ['a', 'b', 'c'], endAfterChunks: 1 }
    const cut = await drain(await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] } }))
    expect(cut.error?.type).toBe('upstream_stream_cut')

    fake.reply = { chunks: ['a', 'b', 'c'], omitDone: true }
    const finished = await drain(await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] } }))
    expect(finished.error).toBeUndefined()
    expect(chunksOf(finished.text)).toMatchObject({ done: true })
    expect(contentOf(chunksOf(finished.text).chunks)).toBe('abc')
  })

  it('turns an error event mid-stream into an UpstreamError', async () => {
    fake.reply = { chunks: ['a', 'b'], errorEventAfterChunks: 1 }
    const { text: partial, error } = await drain(await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] } }))
    expect(error).toBeInstanceOf(UpstreamError)
    expect(error.message).toMatch(/server had an error/)
    expect(contentOf(chunksOf(partial).chunks)).toBe('a')
  })

  it('refuses a non-streamed answer cut short, with or without a clean HTTP end', async () => {
    for (const reply of [{ dieAfterChunks: 0 }, { endAfterChunks: 0 }]) {
      fake.reply = reply
      const response = await upstream.request({ route: 'chat/completions', body: { model: 'x', messages: [{ role: 'user', content: 'a b c' }] } })
      const { error } = await drain(response)
      expect(error?.status, JSON.stringify(reply)).toBe(502)
      expect(error?.type).toBe('upstream_stream_cut')
    }
  })

  it('closes the upstream request when the caller aborts mid-stream', async () => {
    const gate = gateAt(1)
    fake.reply = { chunks: ['a', 'b', 'c'], beforeChunk: gate.beforeChunk }
    const controller = new AbortController()
    const response = await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] }, signal: controller.signal })
    const iterator = response.body[Symbol.asyncIterator]()
    await iterator.next()
    await gate.reached
    const reason = new Error('the client went away')
    controller.abort(reason)
    expect(await rejection(iterator.next())).toBe(reason)
    expect(await fake.requests[0]!.ended).toBe('client-closed')
  })

  it('reads the upstream only as fast as the caller pulls', async () => {
    const total = 2000 // 32 MiB in 16 KiB chunks: more than socket buffers hold
    fake.reply = { chunks: Array.from({ length: total }, () => 'x'.repeat(16 * 1024)) }
    const response = await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] } })
    const iterator = response.body[Symbol.asyncIterator]()
    await iterator.next()
    const request = fake.requests[0]!
    // the caller holds one chunk and pulls no more: the fake's writes must block
    await waitFor('the fake upstream to be held back by a full socket', () => request.stalls > 0)
    expect(request.chunksWritten).toBeLessThan(total)
    await iterator.return?.()
    expect(await request.ended).toBe('client-closed')
  })

  it('closes the upstream request when the caller stops reading', async () => {
    const gate = gateAt(1)
    fake.reply = { chunks: ['a', 'b', 'c'], beforeChunk: gate.beforeChunk }
    const response = await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] } })
    for await (const _ of response.body) break
    expect(await fake.requests[0]!.ended).toBe('client-closed')
  })

  it('sends streamed requests one after another on one kept connection', async () => {
    // A stream's HTTP end comes after its [DONE]: the connection is kept only if that end is still read.
    const connections = new UpstreamConnections({ idleSocketMs: 60_000 })
    const kept = createUpstream({ baseUrl: fake.url, dialect: 'openai', apiKey: KEY, upstreamModel: 'llama3:8b' }, { logger, connections })
    try {
      for (let i = 0; i < 3; i++) {
        const response = await kept.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] } })
        expect(chunksOf(await text(response.body)).done).toBe(true)
        await waitFor('the connection to be back in the pool', () => connections.idle === 1)
      }
      expect(fake.connectionsAccepted).toBe(1)
      expect(fake.requests.length).toBe(3)
    } finally {
      connections.destroy()
    }
  })

  it('closes a kept connection once idle for idleSocketMs, never under a slow answer', async () => {
    const connections = new UpstreamConnections({ idleSocketMs: 150 })
    const kept = createUpstream({ baseUrl: fake.url, dialect: 'openai', apiKey: KEY, upstreamModel: 'llama3:8b' }, { logger, connections })
    const ask = async (): Promise<string> => await text((await kept.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] } })).body)
    // The upstream would keep it far longer: only the node's own timeout can close it within the wait.
    fake.keepAliveTimeout = 60_000
    try {
      // Silences of 3x the idle timeout between chunks: the timer must not count while a request runs.
      fake.reply = { chunks: ['slow', ' answer'], delayMs: 450 }
      expect(contentOf(chunksOf(await ask()).chunks)).toBe('slow answer')
      expect(await fake.requests[0]!.ended).toBe('completed')
      await waitFor('the idle kept connection to be closed', () => fake.openConnections === 0 && connections.open === 0, { timeoutMs: 10_000 })
    } finally {
      connections.destroy()
    }
  })

  it('sends a request again when the upstream dropped the kept connection it went out on', async () => {
    // Answers the first request of each connection and drops the connection at the next, as an
    // upstream whose keep-alive timeout closed an idle connection just as a request reused it.
    const requests = new WeakMap<Socket, number>()
    let dropped = 0
    const server = createServer((req, res) => {
      const count = (requests.get(req.socket) ?? 0) + 1
      requests.set(req.socket, count)
      req.resume()
      req.on('end', () => {
        if (count > 1) {
          dropped++
          req.socket.destroy()
          return
        }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.5] }] }))
      })
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const connections = new UpstreamConnections()
    try {
      const dropping = createUpstream({ baseUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`, dialect: 'openai', upstreamModel: 'm' }, { logger, connections })
      for (let i = 0; i < 2; i++) {
        const response = await dropping.request({ route: 'embeddings', body: { input: 'a' } })
        expect(JSON.parse(await text(response.body)).data[0].embedding).toEqual([0.5])
      }
      expect(dropped).toBe(1)
    } finally {
      connections.destroy()
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  })

  it('gives up on a stalled stream or a silent upstream with 504, and on an unreachable one with 502', async () => {
    const gate = gateAt(1)
    fake.reply = { chunks: ['a', 'b'], beforeChunk: gate.beforeChunk }
    const impatient = createUpstream({ baseUrl: fake.url, dialect: 'openai', apiKey: KEY, upstreamModel: 'llama3:8b' }, { idleTimeoutMs: 200, logger })
    const { error } = await drain(await impatient.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] } }))
    expect(error?.status).toBe(504)
    expect(error?.type).toBe('upstream_timeout')
    expect(await fake.requests[0]!.ended).toBe('client-closed')

    // a server that accepts the connection and never answers
    const sockets: Socket[] = []
    const silent = createNetServer(socket => { sockets.push(socket) })
    await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
    try {
      const silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}/v1`
      const mute = await rejection(createUpstream({ baseUrl: silentUrl, dialect: 'openai', upstreamModel: 'm' }, { responseTimeoutMs: 200, logger })
        .request({ route: 'chat/completions', body: { messages: [] } }))
      expect(mute.status).toBe(504)
      expect(mute.message).toMatch(/did not answer within 200 ms/)
    } finally {
      sockets.forEach(socket => socket.destroy())
      await new Promise(resolve => silent.close(resolve))
    }

    const closed = new FakeOpenAIServer()
    await closed.start()
    const url = closed.url
    await closed.stop()
    const gone = await rejection(createUpstream({ baseUrl: url, dialect: 'openai', upstreamModel: 'm' }, { logger }).request({ route: 'embeddings', body: { input: 'a' } }))
    expect(gone.status).toBe(502)
    expect(gone.type).toBe('upstream_unreachable')
    expect(gone.message).toContain(url)
  })

  it('sends a base URL\'s user and password as basic auth, and fails each request to an unusable URL with 502, without its credentials', async () => {
    const open = new FakeOpenAIServer({ models: ['m'] })
    await open.start()
    try {
      const withCredentials = open.url.replace('http://', 'http://user:pa%20ss@')
      const { error } = await drain(await createUpstream({ baseUrl: withCredentials, dialect: 'openai', upstreamModel: 'm' }, { logger }).request({ route: 'embeddings', body: { input: 'a' } }))
      expect(error).toBeUndefined()
      expect(open.requests[0]!.path).toBe('/v1/embeddings')
      expect(open.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('user:pa ss').toString('base64')}`)
    } finally {
      await open.stop()
    }

    // An embedder's target is not checked beforehand (resolveUpstreamTarget checks only the node's own config):
    // the adapter is made, each request fails.
    const ftp = createUpstream({ baseUrl: 'ftp://user:secret@127.0.0.1/v1', dialect: 'openai', upstreamModel: 'm' }, { logger })
    for (let i = 0; i < 2; i++) {
      const refused = await rejection(ftp.request({ route: 'embeddings', body: { input: 'a' } }))
      expect(refused.status).toBe(502)
      expect(refused.message).toBe('cannot reach the upstream at ftp://127.0.0.1/v1/embeddings: unsupported protocol ftp:')
    }
  })
})

describe('Anthropic translation', () => {
  const options = { upstreamModel: 'claude-x', defaultMaxTokens: 4096 }

  it('hoists system prompts, merges turns, and maps tools, tool calls and tool results', () => {
    const request = toAnthropicRequest({
      model: 'cluster-claude',
      max_completion_tokens: 500,
      temperature: 0.5,
      stop: 'END',
      user: 'u1',
      tool_choice: 'required',
      parallel_tool_calls: false,
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'developer', content: [{ type: 'text', text: 'Use metric units.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '18 C' },
        { role: 'user', content: 'And tomorrow?' }
      ]
    }, options)
    expect(request).toEqual({
      model: 'claude-x',
      max_tokens: 500,
      temperature: 0.5,
      stop_sequences: ['END'],
      metadata: { user_id: 'u1' },
      system: 'You are terse.\n\nUse metric units.',
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: '18 C' }, { type: 'text', text: 'And tomorrow?' }] }
      ]
    })
    expect(toAnthropicRequest({ messages: [{ role: 'user', content: 'hi' }] }, options).max_tokens).toBe(4096)
  })

  it('refuses what Anthropic cannot express, naming the field', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ messages: 'hi' }, /^messages: expected an array/],
      [{ n: 2, messages: [] }, /^n: /],
      [{ response_format: { type: 'json_schema' }, messages: [] }, /^response_format: /],
      [{ messages: [{ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{not json' } }] }] }, /^messages\[0\]\.tool_calls\[0\]\.function\.arguments: is not valid JSON/],
      [{ messages: [{ role: 'user', content: [{ type: 'input_audio' }] }] }, /^messages\[0\]\.content\[0\]\.type: got "input_audio"/],
      [{ messages: [{ role: 'tool', content: 'x' }] }, /^messages\[0\]\.tool_call_id: /],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, /^messages\[0\]\.role: got "wizard"/],
      [{ tools: [{ type: 'web_search' }], messages: [] }, /^tools\[0\]: /]
    ]
    for (const [body, message] of bad) {
      const err = (() => { try { toAnthropicRequest(body, options) } catch (e) { return e } })() as UpstreamError
      expect(err, JSON.stringify(body)).toBeInstanceOf(UpstreamError)
      expect(err.status).toBe(400)
      expect(err.message).toMatch(message)
    }
  })
})

describe('Anthropic dialect adapter', () => {
  let fake: FakeAnthropicServer
  let upstream: ModelUpstream

  beforeEach(async () => {
    fake = new FakeAnthropicServer({ apiKey: KEY, models: ['claude-test'] })
    await fake.start()
    upstream = createUpstream({ baseUrl: fake.url, dialect: 'anthropic', apiKey: KEY, upstreamModel: 'claude-test' }, { logger })
  })
  afterEach(async () => { await fake.stop() })

  it('answers a non-streamed request as a chat.completion with usage', async () => {
    const response = await upstream.request({ route: 'chat/completions', body: { model: 'cluster-claude', messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'one two' }] } })
    expect(response.contentType).toBe('application/json')
    const completion = JSON.parse(await text(response.body))
    expect(completion).toMatchObject({
      object: 'chat.completion',
      model: 'claude-test',
      choices: [{ index: 0, message: { role: 'assistant', content: 'two one' }, finish_reason: 'stop' }]
    })
    expect(completion.usage.completion_tokens).toBe(2)
    expect(completion.usage.total_tokens).toBe(completion.usage.prompt_tokens + 2)

    const sent = fake.requests[0]!
    expect(sent.headers['x-api-key']).toBe(KEY)
    expect(sent.headers['anthropic-version']).toBe('2023-06-01')
    expect(sent.headers.authorization).toBeUndefined()
    expect(sent.body).toEqual({ model: 'claude-test', max_tokens: 4096, system: 'sys', messages: [{ role: 'user', content: [{ type: 'text', text: 'one two' }] }] })
  })

  it('translates a stream event by event, incrementally, ending with [DONE] and usage when asked', async () => {
    const gate = gateAt(2)
    fake.reply = { chunks: ['Bon', 'jour', ' à', ' tous'], beforeChunk: gate.beforeChunk }
    const response = await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] } })
    expect(response.contentType).toBe('text/event-stream')
    const iterator = response.body[Symbol.asyncIterator]()
    let received = ''
    while (!received.includes('"jour"')) {
      const next = await iterator.next()
      expect(next.done).toBe(false)
      received += Buffer.from(next.value!).toString('utf8')
    }
    await gate.reached
    expect(fake.requests[0]!.outcome).toBeUndefined()
    gate.release()
    while (true) {
      const next = await iterator.next()
      if (next.done === true) break
      received += Buffer.from(next.value).toString('utf8')
    }
    const { chunks, done } = chunksOf(received)
    expect(done).toBe(true)
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' })
    expect(chunks.every(c => c.object === 'chat.completion.chunk' && c.id === chunks[0].id && c.model === 'claude-test')).toBe(true)
    expect(contentOf(chunks)).toBe('Bonjour à tous')
    expect(chunks.at(-2).choices[0].finish_reason).toBe('stop')
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 4 } })
    expect(await fake.requests[0]!.ended).toBe('completed')
  })

  it('turns tool_use into tool_calls, streamed and whole, and carries the results back', async () => {
    fake.reply = { chunks: ['Let me check.'], toolCalls: [{ id: 'toolu_1', name: 'get_weather', arguments: { city: 'Paris' } }, { id: 'toolu_2', name: 'get_time', arguments: { zone: 'CET' } }] }
    const tools = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } } }
    ]
    const ask = [{ role: 'user', content: 'Weather and time in Paris?' }]
    const streamed = chunksOf(await text((await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, tools, messages: ask } })).body))
    expect(contentOf(streamed.chunks)).toBe('Let me check.')
    expect(toolCallsOf(streamed.chunks).map(c => [c.id, c.name, JSON.parse(c.arguments)])).toEqual([['toolu_1', 'get_weather', { city: 'Paris' }], ['toolu_2', 'get_time', { zone: 'CET' }]])
    expect(streamed.chunks.at(-1).choices[0].finish_reason).toBe('tool_calls')
    expect(fake.requests[0]!.body.tools).toEqual([
      { name: 'get_weather', input_schema: tools[0]!.function.parameters },
      { name: 'get_time', input_schema: tools[1]!.function.parameters }
    ])

    const whole = JSON.parse(await text((await upstream.request({ route: 'chat/completions', body: { model: 'x', tools, messages: ask } })).body))
    const message = whole.choices[0].message
    expect(whole.choices[0].finish_reason).toBe('tool_calls')
    expect(message.tool_calls.map((c: any) => [c.id, c.function.name, JSON.parse(c.function.arguments)])).toEqual([['toolu_1', 'get_weather', { city: 'Paris' }], ['toolu_2', 'get_time', { zone: 'CET' }]])

    // the follow-up turn, as an OpenAI client sends it, passes the fake's tool_result checks
    fake.reply = {}
    const followUp = await upstream.request({
      route: 'chat/completions',
      body: {
        model: 'x',
        tools,
        messages: [...ask, message, { role: 'tool', tool_call_id: 'toolu_1', content: '18 C' }, { role: 'tool', tool_call_id: 'toolu_2', content: [{ type: 'text', text: '14:00' }] }]
      }
    })
    expect(JSON.parse(await text(followUp.body)).choices[0].finish_reason).toBe('stop')
    expect(fake.requests[2]!.body.messages.at(-1)).toEqual({
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '18 C' }, { type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'text', text: '14:00' }] }]
    })
  })

  it('maps finish reasons and error statuses to OpenAI shapes, without the key', async () => {
    fake.reply = { truncated: true }
    const truncated = JSON.parse(await text((await upstream.request({ route: 'chat/completions', body: { model: 'x', messages: [{ role: 'user', content: 'a' }] } })).body))
    expect(truncated.choices[0].finish_reason).toBe('length')

    fake.reply = { fail: { status: 529, type: 'overloaded_error', message: 'Overloaded' } }
    const overloaded = await rejection(upstream.request({ route: 'chat/completions', body: { model: 'x', messages: [{ role: 'user', content: 'a' }] } }))
    expect(overloaded.toJSON()).toEqual({ status: 529, body: { error: { message: 'Overloaded', type: 'overloaded_error', param: null, code: null } } })

    const wrongKey = 'sk-ant-wrong-key-do-not-leak'
    const unauthorised = await rejection(createUpstream({ baseUrl: fake.url, dialect: 'anthropic', apiKey: wrongKey, upstreamModel: 'claude-test' }, { logger })
      .request({ route: 'chat/completions', body: { messages: [{ role: 'user', content: 'a' }] } }))
    expect(unauthorised.status).toBe(401)
    expect(unauthorised.type).toBe('authentication_error')
    expect(JSON.stringify(unauthorised.toJSON())).not.toContain(wrongKey)

    const embeddings = await rejection(upstream.request({ route: 'embeddings', body: { input: 'a' } }))
    expect(embeddings.status).toBe(400)
    expect(embeddings.body.error.code).toBe('unsupported_route')
    expect(fake.requests).toHaveLength(3) // refused before any upstream call
  })

  it('turns a mid-stream error event, a dead upstream and a stream without message_stop into errors', async () => {
    const body = { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] }
    fake.reply = { chunks: ['a', 'b', 'c'], errorEventAfterChunks: 1 }
    const overloaded = await drain(await upstream.request({ route: 'chat/completions', body }))
    expect(contentOf(chunksOf(overloaded.text).chunks)).toBe('a')
    expect(overloaded.error?.toJSON()).toMatchObject({ status: 529, body: { error: { type: 'overloaded_error', message: 'Overloaded' } } })

    fake.reply = { chunks: ['a', 'b', 'c'], dieAfterChunks: 2 }
    const died = await drain(await upstream.request({ route: 'chat/completions', body }))
    expect(contentOf(chunksOf(died.text).chunks)).toBe('ab')
    expect(died.error?.type).toBe('upstream_stream_cut')

    fake.reply = { chunks: ['a', 'b', 'c'], endAfterChunks: 3 }
    const unfinished = await drain(await upstream.request({ route: 'chat/completions', body }))
    expect(contentOf(chunksOf(unfinished.text).chunks)).toBe('abc')
    expect(chunksOf(unfinished.text).done).toBe(false)
    expect(unfinished.error?.message).toMatch(/before message_stop/)
  })

  it('closes the upstream request when the caller aborts', async () => {
    const gate = gateAt(1)
    fake.reply = { chunks: ['a', 'b'], beforeChunk: gate.beforeChunk }
    const controller = new AbortController()
    const response = await upstream.request({ route: 'chat/completions', body: { model: 'x', stream: true, messages: [{ role: 'user', content: 'a' }] }, signal: controller.signal })
    const iterator = response.body[Symbol.asyncIterator]()
    await iterator.next()
    await gate.reached
    controller.abort()
    await rejection(iterator.next())
    expect(await fake.requests[0]!.ended).toBe('client-closed')
  })

  it('is a faithful OpenAI server to the official openai client, tool calls included', async () => {
    const served = await serveAdapter(upstream)
    try {
      const client = new OpenAI({ baseURL: served.url, apiKey: 'unused', maxRetries: 0 })
      fake.reply = {}
      const words: string[] = []
      for await (const chunk of await client.chat.completions.create({ model: 'x', stream: true, messages: [{ role: 'user', content: 'mesh the over' }] })) {
        words.push(chunk.choices[0]?.delta.content ?? '')
      }
      expect(words.join('')).toBe('over the mesh')

      fake.reply = { chunks: [], toolCalls: [{ name: 'exec', arguments: { cmd: 'ls -la', cwd: '/tmp' } }] }
      const final = await client.chat.completions.stream({
        model: 'x',
        messages: [{ role: 'user', content: 'list files' }],
        tools: [{ type: 'function', function: { name: 'exec', parameters: { type: 'object', properties: { cmd: { type: 'string' } } } } }]
      }).finalChatCompletion()
      const call = final.choices[0]?.message.tool_calls?.[0]
      expect(final.choices[0]?.finish_reason).toBe('tool_calls')
      expect(call?.type === 'function' && [call.function.name, JSON.parse(call.function.arguments)]).toEqual(['exec', { cmd: 'ls -la', cwd: '/tmp' }])

      fake.reply = { fail: { status: 400, type: 'invalid_request_error', message: 'prompt is too long' } }
      const err = await rejection(client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'a' }] }))
      expect(err).toBeInstanceOf(OpenAI.BadRequestError)
      expect(err.message).toMatch(/prompt is too long/)
    } finally {
      await served.close()
    }
  })
})

describe('model entry resolution', () => {
  const model = (extra: Partial<ModelConfig>): ModelConfig => ({ id: 'm', provider: 'ollama', dialect: 'openai', ...extra })

  it('fills in well-known base URLs, the upstream model name and the key from the environment', () => {
    expect(resolveUpstreamTarget(model({}), {})).toEqual({ baseUrl: 'http://127.0.0.1:11434/v1', dialect: 'openai', upstreamModel: 'm' })
    expect(resolveUpstreamTarget(model({ provider: 'anthropic', dialect: 'anthropic', apiKeyEnv: 'ANT_KEY', upstreamModel: 'claude-x' }), { ANT_KEY: KEY }))
      .toEqual({ baseUrl: 'https://api.anthropic.com', dialect: 'anthropic', apiKey: KEY, upstreamModel: 'claude-x' })
  })

  it('refuses a missing key or base URL, naming the field and not the value', () => {
    expect(() => resolveUpstreamTarget(model({ apiKeyEnv: 'NOPE_KEY' }), {})).toThrow('model "m": the environment variable NOPE_KEY (apiKeyEnv) is not set on this node')
    expect(() => resolveUpstreamTarget(model({ provider: 'acme' }), {})).toThrow(/model "m": baseUrl is not set and provider "acme" has no default/)
    expect(() => resolveUpstreamTarget(model({ baseUrl: 'ftp://x' }), {})).toThrow(/baseUrl must be http/)
  })
})

describe('the demo model', () => {
  it('is a real OpenAI-compatible server streaming the reversed words', async () => {
    const server = await startDemoModel({ delayMs: 0 })
    try {
      const client = new OpenAI({ baseURL: server.url, apiKey: 'none', maxRetries: 0 })
      const words: string[] = []
      for await (const chunk of await client.chat.completions.create({ model: 'builtin-reverse', stream: true, messages: [{ role: 'user', content: 'the mesh works' }] })) {
        const content = chunk.choices[0]?.delta.content
        if (content) words.push(content)
      }
      expect(words).toEqual(['works', ' mesh', ' the'])
    } finally {
      await server.stop()
    }
  })
})
