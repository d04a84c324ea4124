/**
 * A fake OpenAI-compatible server for tests, benchmarks and the demo:
 * /v1/chat/completions (streamed or not, tool calls), /v1/completions,
 * /v1/embeddings and /v1/models, in the wire format of the OpenAI API, with
 * faults on request. By default it is the built-in model (./reply.ts).
 */
import { createHash } from 'node:crypto'
import { die, FakeUpstreamServer, sendJson, writeEventStream, type RecordedRequest } from './fake-server.js'
import { argumentPieces, builtinAnswer, countTokens, lastUserText, replyFor, type FakeReply, type FakeReplySource } from './reply.js'
import type { ServerResponse } from 'node:http'

export interface FakeOpenAIInit {
  /** Model names it serves; others get 404 model_not_found. Default ["fake-model"]. */
  models?: string[]
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string
  /** What to answer; default the built-in model. Can be changed later through `reply`. */
  reply?: FakeReplySource
  /** Length of the fake embedding vectors, unless the request asks for `dimensions`. Default 8. */
  embeddingDimensions?: number
}

type RouteHandler = (request: RecordedRequest, res: ServerResponse, reply: FakeReply) => Promise<void>

export class FakeOpenAIServer extends FakeUpstreamServer {
  reply: FakeReplySource
  readonly models: string[]
  private readonly apiKey?: string
  private readonly embeddingDimensions: number
  private counter = 0

  constructor (init: FakeOpenAIInit = {}) {
    super('openai')
    this.models = init.models ?? ['fake-model']
    this.apiKey = init.apiKey
    this.reply = init.reply ?? {}
    this.embeddingDimensions = init.embeddingDimensions ?? 8
  }

  /** The base URL an OpenAI client takes: http://127.0.0.1:<port>/v1 */
  get url (): string {
    return `${this.origin}/v1`
  }

  protected async handle (request: RecordedRequest, res: ServerResponse): Promise<void> {
    const route = `${request.method} ${request.path.replace(/\/+$/, '')}`
    if (this.apiKey != null && request.headers.authorization !== `Bearer ${this.apiKey}`) {
      const given = request.headers.authorization?.replace(/^Bearer /, '') ?? ''
      // echoes the key it got, as careless upstreams do: the adapter must not pass it on
      sendError(res, 401, `Incorrect API key provided: ${given}.`, 'invalid_request_error', 'invalid_api_key')
      return
    }
    if (route === 'GET /v1/models') {
      sendJson(res, 200, { object: 'list', data: this.models.map(id => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'clawmatrix-fake' })) })
      return
    }
    const routes: Record<string, RouteHandler | undefined> = {
      'POST /v1/chat/completions': this.chat,
      'POST /v1/completions': this.completion,
      'POST /v1/embeddings': this.embeddings
    }
    const handler = routes[route]
    if (handler == null) {
      sendError(res, 404, `Invalid URL (${route})`, 'invalid_request_error', null)
      return
    }
    const body = request.body
    if (body == null || typeof body !== 'object') {
      sendError(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error', null)
      return
    }
    if (!this.models.includes(body.model)) {
      sendError(res, 404, `The model \`${body.model}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found')
      return
    }
    const reply = replyFor(this.reply, request)
    if (reply.fail != null) {
      sendError(res, reply.fail.status, reply.fail.message, reply.fail.type ?? 'server_error', null)
      return
    }
    await handler.call(this, request, res, reply)
  }

  private async chat (request: RecordedRequest, res: ServerResponse, reply: FakeReply): Promise<void> {
    const body = request.body
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      sendError(res, 400, "Missing required parameter: 'messages'.", 'invalid_request_error', 'missing_required_parameter', 'messages')
      return
    }
    const id = `chatcmpl-fake${++this.counter}`
    const created = Math.floor(Date.now() / 1000)
    const chunks = reply.chunks ?? builtinAnswer(lastUserText(body.messages))
    const calls = (reply.toolCalls ?? []).map((call, i) => ({ id: call.id ?? `call_fake${this.counter}_${i}`, name: call.name, json: JSON.stringify(call.arguments) }))
    const finish = calls.length > 0 ? 'tool_calls' : reply.truncated === true ? 'length' : 'stop'
    const usage = {
      prompt_tokens: countTokens(JSON.stringify(body.messages)),
      completion_tokens: chunks.length + calls.length,
      total_tokens: 0
    }
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens

    if (body.stream !== true) {
      const text = chunks.join('')
      const message: Record<string, unknown> = { role: 'assistant', content: text === '' && calls.length > 0 ? null : text, refusal: null }
      if (calls.length > 0) message.tool_calls = calls.map(c => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.json } }))
      sendWhole(res, {
        id, object: 'chat.completion', created, model: body.model, system_fingerprint: 'fp_fake',
        choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
        usage
      }, reply)
      return
    }

    const includeUsage = body.stream_options?.include_usage === true
    const event = (choices: unknown[], extra: Record<string, unknown> = {}): string => `data: ${JSON.stringify({
      id, object: 'chat.completion.chunk', created, model: body.model, system_fingerprint: 'fp_fake', choices, ...(includeUsage ? { usage: null } : {}), ...extra
    })}\n\n`
    const delta = (d: Record<string, unknown>, finishReason: string | null = null): string =>
      event([{ index: 0, delta: d, logprobs: null, finish_reason: finishReason }])
    const pieces = [
      ...chunks.map(content => delta({ content })),
      ...calls.flatMap((call, index) => [
        delta({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }),
        ...argumentPieces(call.json).map(part => delta({ tool_calls: [{ index, function: { arguments: part } }] }))
      ])
    ]
    await writeEventStream(request, res, {
      head: delta({ role: 'assistant', content: calls.length > 0 && chunks.length === 0 ? null : '', refusal: null }),
      chunks: pieces,
      tail: delta({}, finish) + (includeUsage ? event([], { usage }) : '') + (reply.omitDone === true ? '' : 'data: [DONE]\n\n'),
      errorEvent: `data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`
    }, reply)
  }

  private async completion (request: RecordedRequest, res: ServerResponse, reply: FakeReply): Promise<void> {
    const body = request.body
    if (typeof body.prompt !== 'string') {
      sendError(res, 400, "Missing required parameter: 'prompt'.", 'invalid_request_error', 'missing_required_parameter', 'prompt')
      return
    }
    const id = `cmpl-fake${++this.counter}`
    const created = Math.floor(Date.now() / 1000)
    const chunks = reply.chunks ?? builtinAnswer(body.prompt)
    const finish = reply.truncated === true ? 'length' : 'stop'
    const choice = (text: string, finishReason: string | null): unknown => ({ text, index: 0, logprobs: null, finish_reason: finishReason })
    const usage = { prompt_tokens: countTokens(body.prompt), completion_tokens: chunks.length, total_tokens: countTokens(body.prompt) + chunks.length }
    if (body.stream !== true) {
      sendWhole(res, { id, object: 'text_completion', created, model: body.model, choices: [choice(chunks.join(''), finish)], usage }, reply)
      return
    }
    const event = (text: string, finishReason: string | null = null): string =>
      `data: ${JSON.stringify({ id, object: 'text_completion', created, model: body.model, choices: [choice(text, finishReason)] })}\n\n`
    await writeEventStream(request, res, {
      head: '',
      chunks: chunks.map(text => event(text)),
      tail: event('', finish) + (reply.omitDone === true ? '' : 'data: [DONE]\n\n'),
      errorEvent: `data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`
    }, reply)
  }

  private async embeddings (request: RecordedRequest, res: ServerResponse, reply: FakeReply): Promise<void> {
    const body = request.body
    const inputs = embeddingInputs(body.input)
    if (inputs == null) {
      sendError(res, 400, "'input' must be a string, an array of strings, or an array of token arrays.", 'invalid_request_error', null, 'input')
      return
    }
    const dimensions = Number.isInteger(body.dimensions) && body.dimensions > 0 ? body.dimensions as number : this.embeddingDimensions
    const base64 = body.encoding_format === 'base64'
    const tokens = inputs.reduce((n, text) => n + countTokens(text), 0)
    sendWhole(res, {
      object: 'list',
      data: inputs.map((text, index) => {
        const vector = fakeEmbedding(text, dimensions)
        return { object: 'embedding', index, embedding: base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector }
      }),
      model: body.model,
      usage: { prompt_tokens: tokens, total_tokens: tokens }
    }, reply)
  }
}

/**
 * A unit vector derived from the text's hash: equal texts give equal
 * vectors. Values are float32-exact, so a base64 round trip is lossless.
 */
export function fakeEmbedding (text: string, dimensions: number): number[] {
  const values: number[] = []
  for (let block = 0; values.length < dimensions; block++) {
    const hash = createHash('sha256').update(`${block}:${text}`).digest()
    for (let i = 0; i + 1 < hash.length && values.length < dimensions; i += 2) values.push(hash.readUInt16LE(i) / 32768 - 1)
  }
  const norm = Math.hypot(...values) || 1
  return Array.from(new Float32Array(values.map(v => v / norm)))
}

function embeddingInputs (input: unknown): string[] | undefined {
  if (typeof input === 'string') return [input]
  if (!Array.isArray(input) || input.length === 0) return undefined
  if (input.every(i => typeof i === 'string')) return input
  if (input.every(i => typeof i === 'number')) return [input.join(' ')]
  if (input.every(i => Array.isArray(i) && i.every(t => typeof t === 'number'))) return input.map(i => i.join(' '))
  return undefined
}

function sendError (res: ServerResponse, status: number, message: string, type: string, code: string | null, param: string | null = null): void {
  sendJson(res, status, { error: { message, type, param, code } })
}

/** A whole JSON answer, or the faulty version of it the reply asked for. */
function sendWhole (res: ServerResponse, body: unknown, reply: FakeReply): void {
  const text = JSON.stringify(body)
  const half = text.slice(0, Math.floor(text.length / 2))
  if (reply.dieAfterChunks != null) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    res.write(half, () => { die(res) })
    return
  }
  if (reply.endAfterChunks != null) {
    // chunked and ended cleanly, but only half the JSON: a cut no HTTP layer sees
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(half)
    return
  }
  sendJson(res, 200, body)
}
