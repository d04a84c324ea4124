/**
 * More clients on the model proxy: Anthropic's official SDK on /v1/messages
 * (translated to any upstream dialect and back) and OpenAI's Responses API
 * passed through, against a host behind a relay.
 */
import { createServer, type Server } from 'node:http'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterEach, describe, expect, it } from 'vitest'
import { FakeAnthropicServer, FakeOpenAIServer } from './fixtures/fake-upstream/index.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  await nodes.cleanup()
  await Promise.allSettled(cleanups.splice(0).map(async stop => { await stop() }))
})

// Lenient: on a loaded machine a ping through a relay can take over a second.
const beat = { intervalMs: 1000, maxMissed: 10 }

/** a -> relay <- c: c hosts the models, a's proxy is called. */
async function relayedHost (models: Array<Record<string, unknown>>, a: Record<string, unknown> = {}): Promise<TestNode> {
  const relay = await nodes.start({ nodeId: 'relay', listen: true, heartbeat: beat })
  const peers = [{ nodeId: 'relay', url: relay.wsAddress() }]
  await nodes.start({ nodeId: 'c', heartbeat: beat, peers, models })
  const caller = await nodes.start({ nodeId: 'a', heartbeat: beat, peers, ...a })
  await waitFor('a to reach c through the relay', () => caller.node.view.nodes().some(n => n.nodeId === 'c' && n.reach === 'relayed'))
  return caller
}

function anthropic (node: TestNode, apiKey = 'unused'): Anthropic {
  return new Anthropic({ baseURL: node.node.http.url, apiKey, maxRetries: 0 })
}

const ASK = [{ role: 'user' as const, content: 'the quick brown fox' }]

describe('Anthropic Messages clients', () => {
  it('the official Anthropic SDK uses an OpenAI-dialect and an Anthropic-dialect cluster model over a relay, streamed and whole', async () => {
    const openaiUpstream = new FakeOpenAIServer()
    const anthropicUpstream = new FakeAnthropicServer()
    await openaiUpstream.start()
    await anthropicUpstream.start()
    cleanups.push(async () => { await openaiUpstream.stop() }, async () => { await anthropicUpstream.stop() })
    const a = await relayedHost([
      { id: 'gpt', provider: 'vllm', baseUrl: openaiUpstream.url, upstreamModel: 'fake-model' },
      { id: 'claude', provider: 'anthropic', baseUrl: anthropicUpstream.url, upstreamModel: anthropicUpstream.models[0] }
    ], { proxyToken: 'proxy-token-123' })
    const client = anthropic(a, 'proxy-token-123')

    for (const model of ['clawmatrix/gpt', 'clawmatrix/claude']) {
      const whole = await client.messages.create({ model, max_tokens: 100, system: 'be brief', messages: ASK })
      expect(whole).toMatchObject({ type: 'message', role: 'assistant', model, stop_reason: 'end_turn', content: [{ type: 'text', text: 'fox brown quick the' }] })
      expect(whole.usage.input_tokens).toBeGreaterThan(0)
      expect(whole.usage.output_tokens).toBe(4)

      const stream = client.messages.stream({ model, max_tokens: 100, messages: ASK })
      const deltas: string[] = []
      stream.on('text', text => { deltas.push(text) })
      const final = await stream.finalMessage()
      expect(deltas).toEqual(['fox', ' brown', ' quick', ' the'])
      expect(final).toMatchObject({ model, stop_reason: 'end_turn', content: [{ type: 'text', text: 'fox brown quick the' }] })
      expect(final.usage.output_tokens).toBe(4)
    }
    // The system prompt reached the OpenAI upstream as a system message.
    expect(openaiUpstream.requests[0]!.body.messages[0]).toEqual({ role: 'system', content: 'be brief' })
  })

  it('carries tool use and tool results both ways, and answers errors in Anthropic\'s shape', async () => {
    const upstream = new FakeOpenAIServer({ reply: request => request.body.messages.some((m: any) => m.role === 'tool') ? { chunks: ['sunny'] } : { chunks: [], toolCalls: [{ id: 'call_1', name: 'weather', arguments: { city: 'Oslo' } }] } })
    await upstream.start()
    cleanups.push(async () => { await upstream.stop() })
    const a = await relayedHost([{ id: 'gpt', provider: 'vllm', baseUrl: upstream.url, upstreamModel: 'fake-model' }])
    const client = anthropic(a)
    const tools = [{ name: 'weather', description: 'the weather', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } }]

    const call = await client.messages.stream({ model: 'gpt', max_tokens: 50, tools, messages: [{ role: 'user', content: 'weather in Oslo?' }] }).finalMessage()
    expect(call.stop_reason).toBe('tool_use')
    expect(call.content).toEqual([{ type: 'tool_use', id: 'call_1', name: 'weather', input: { city: 'Oslo' } }])
    expect(upstream.requests[0]!.body.tools[0]).toMatchObject({ type: 'function', function: { name: 'weather' } })

    const answer = await client.messages.create({
      model: 'gpt',
      max_tokens: 50,
      tools,
      messages: [
        { role: 'user', content: 'weather in Oslo?' },
        { role: 'assistant', content: call.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: '12 C, sun' }] }
      ]
    })
    expect(answer.content).toEqual([{ type: 'text', text: 'sunny' }])
    expect(upstream.requests[1]!.body.messages.slice(1)).toEqual([
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '12 C, sun' }
    ])

    const unknown = await client.messages.create({ model: 'nope', max_tokens: 5, messages: ASK }).catch((err: unknown) => err)
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError)
    expect((unknown as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({ type: 'error', error: { type: 'not_found_error' } })
    const bad = await client.messages.create({ model: 'gpt', max_tokens: 0, messages: ASK }).catch((err: unknown) => err)
    expect(bad).toBeInstanceOf(Anthropic.BadRequestError)
  })
})

describe('OpenAI Responses API', () => {
  it('passes /v1/responses through to an upstream that offers it, streamed and whole, with usage counted', async () => {
    const upstream = await responsesUpstream()
    const a = await relayedHost([{ id: 'resp', provider: 'openai', baseUrl: upstream.url, upstreamModel: 'upstream-model' }])
    const client = new OpenAI({ baseURL: `${a.node.http.url}/v1`, apiKey: 'unused', maxRetries: 0 })

    const whole = await client.responses.create({ model: 'clawmatrix/resp', input: 'hello there' })
    expect(whole.output_text).toBe('hi: hello there')
    expect(upstream.bodies[0]).toMatchObject({ model: 'upstream-model', input: 'hello there' })

    const stream = await client.responses.create({ model: 'clawmatrix/resp', input: 'again', stream: true })
    const types: string[] = []
    let text = ''
    for await (const event of stream) {
      types.push(event.type)
      if (event.type === 'response.output_text.delta') text += event.delta
    }
    expect(types).toEqual(['response.created', 'response.output_text.delta', 'response.output_text.delta', 'response.completed'])
    expect(text).toBe('hi: again')

    const usage = await (await fetch(`${a.node.http.url}/clawmatrix/usage`)).json() as any
    expect(usage.requested).toEqual([{ model: 'resp', host: 'c', caller: 'a', input: 2 * 7, output: 2 * 3, requests: 2 }])
  })
})

/** A minimal upstream speaking the Responses API: `hi: <input>`, 7 tokens in, 3 out. */
async function responsesUpstream (): Promise<{ url: string, bodies: any[] }> {
  const bodies: any[] = []
  const server: Server = createServer((req, res) => {
    let raw = ''
    req.on('data', chunk => { raw += chunk })
    req.on('end', () => {
      if (req.url !== '/v1/responses') {
        res.writeHead(404).end()
        return
      }
      const body = JSON.parse(raw)
      bodies.push(body)
      const text = `hi: ${String(body.input)}`
      const response = (status: string, output: unknown[]): Record<string, unknown> => ({
        id: 'resp_1', object: 'response', created_at: 1, status, model: body.model, output,
        usage: status === 'completed' ? { input_tokens: 7, output_tokens: 3, total_tokens: 10 } : null
      })
      const message = [{ type: 'message', id: 'msg_1', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text, annotations: [] }] }]
      if (body.stream !== true) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(response('completed', message)))
        return
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const event = (type: string, data: Record<string, unknown>): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
      res.write(event('response.created', { response: response('in_progress', []) }))
      res.write(event('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'hi: ' }))
      res.write(event('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: String(body.input) }))
      res.end(event('response.completed', { response: response('completed', message) }))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(async () => { await new Promise(resolve => server.close(resolve)) })
  const address = server.address() as { port: number }
  return { url: `http://127.0.0.1:${address.port}/v1`, bodies }
}
