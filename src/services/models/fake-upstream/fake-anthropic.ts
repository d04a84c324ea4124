/**
 * A fake Anthropic Messages server (POST /v1/messages) for tests: the
 * request checks the real API makes that a translation can trip over, whole
 * and streamed answers in the real event format (text, tool_use with
 * input_json_delta), and faults on request.
 */
import { FakeUpstreamServer, sendJson, writeEventStream, type RecordedRequest } from './fake-server.js'
import { argumentPieces, builtinAnswer, countTokens, lastUserText, replyFor, type FakeReply, type FakeReplySource } from './reply.js'
import type { ServerResponse } from 'node:http'

export interface FakeAnthropicInit {
  /** Model names it serves; others get 404. Default ["fake-claude"]. */
  models?: string[]
  /** When set, requests must carry `x-api-key: <apiKey>` (or `Authorization: Bearer <apiKey>`). */
  apiKey?: string
  reply?: FakeReplySource
}

export class FakeAnthropicServer extends FakeUpstreamServer {
  reply: FakeReplySource
  readonly models: string[]
  private readonly apiKey?: string
  private counter = 0

  constructor (init: FakeAnthropicInit = {}) {
    super('anthropic')
    this.models = init.models ?? ['fake-claude']
    this.apiKey = init.apiKey
    this.reply = init.reply ?? {}
  }

  /** The base URL Anthropic clients take: http://127.0.0.1:<port> */
  get url (): string {
    return this.origin
  }

  protected async handle (request: RecordedRequest, res: ServerResponse): Promise<void> {
    if (`${request.method} ${request.path}` !== 'POST /v1/messages') {
      sendError(res, 404, 'not_found_error', 'Not found')
      return
    }
    // the Messages API takes the key as x-api-key; newer SDKs send it as a bearer token
    if (this.apiKey != null && request.headers['x-api-key'] !== this.apiKey && request.headers.authorization !== `Bearer ${this.apiKey}`) {
      sendError(res, 401, 'authentication_error', 'invalid x-api-key')
      return
    }
    if (request.headers['anthropic-version'] == null) {
      sendError(res, 400, 'invalid_request_error', 'anthropic-version: header is required')
      return
    }
    const body = request.body
    const problem = requestProblem(body, this.models)
    if (problem != null) {
      sendError(res, problem.status ?? 400, problem.status === 404 ? 'not_found_error' : 'invalid_request_error', problem.message)
      return
    }
    const reply = replyFor(this.reply, request)
    if (reply.fail != null) {
      sendError(res, reply.fail.status, reply.fail.type ?? 'api_error', reply.fail.message)
      return
    }
    await this.answer(request, res, reply)
  }

  private async answer (request: RecordedRequest, res: ServerResponse, reply: FakeReply): Promise<void> {
    const body = request.body
    const id = `msg_fake${++this.counter}`
    const chunks = reply.chunks ?? builtinAnswer(lastUserText(body.messages))
    const calls = (reply.toolCalls ?? []).map((call, i) => ({ id: call.id ?? `toolu_fake${this.counter}_${i}`, name: call.name, input: call.arguments }))
    const stopReason = calls.length > 0 ? 'tool_use' : reply.truncated === true ? 'max_tokens' : 'end_turn'
    const inputTokens = countTokens(JSON.stringify([body.system ?? '', body.messages]))
    const outputTokens = chunks.length + calls.length

    if (body.stream !== true) {
      const text = chunks.join('')
      sendJson(res, 200, {
        id, type: 'message', role: 'assistant', model: body.model,
        content: [
          ...(text === '' ? [] : [{ type: 'text', text }]),
          ...calls.map(call => ({ type: 'tool_use', ...call }))
        ],
        stop_reason: stopReason,
        stop_sequence: null,
        usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: outputTokens }
      })
      return
    }

    // Blocks: text (if any), then one tool_use per call. Events that carry no
    // content ride along with the next counted chunk.
    const counted: string[] = []
    let pending = ''
    const extra = (type: string, data: Record<string, unknown>): void => { pending += sse(type, data) }
    const chunk = (type: string, data: Record<string, unknown>): void => { counted.push(pending + sse(type, data)); pending = '' }
    let index = 0
    if (chunks.length > 0) {
      extra('content_block_start', { index, content_block: { type: 'text', text: '' } })
      extra('ping', {})
      for (const text of chunks) chunk('content_block_delta', { index, delta: { type: 'text_delta', text } })
      extra('content_block_stop', { index })
      index++
    }
    for (const call of calls) {
      extra('content_block_start', { index, content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} } })
      chunk('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } })
      for (const part of argumentPieces(JSON.stringify(call.input))) chunk('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: part } })
      extra('content_block_stop', { index })
      index++
    }
    await writeEventStream(request, res, {
      head: sse('message_start', {
        message: {
          id, type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null,
          usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 }
        }
      }),
      chunks: counted,
      tail: pending +
        sse('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: outputTokens } }) +
        sse('message_stop', {}),
      errorEvent: sse('error', { error: { type: 'overloaded_error', message: 'Overloaded' } })
    }, reply)
  }
}

function sse (type: string, data: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
}

function sendError (res: ServerResponse, status: number, type: string, message: string): void {
  sendJson(res, status, { type: 'error', error: { type, message }, request_id: 'req_fake' })
}

/**
 * The checks of the real API a translation is most likely to trip over:
 * required fields, roles, empty text blocks, and tool results that must
 * answer the previous turn's tool_use blocks first thing.
 */
function requestProblem (body: any, models: string[]): { status?: number, message: string } | undefined {
  if (body == null || typeof body !== 'object') return { message: 'request body: expected a JSON object' }
  if (typeof body.model !== 'string') return { message: 'model: Field required' }
  if (!models.includes(body.model)) return { status: 404, message: `model: ${body.model}` }
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return { message: 'max_tokens: Field required' }
  if (body.system != null && typeof body.system !== 'string' && !Array.isArray(body.system)) return { message: 'system: Input should be a valid string or list' }
  if (!Array.isArray(body.messages) || body.messages.length === 0) return { message: 'messages: Field required' }
  for (const [i, message] of body.messages.entries()) {
    if (message?.role !== 'user' && message?.role !== 'assistant') {
      return { message: `messages.${i}.role: Unexpected role ${JSON.stringify(message?.role)}. The Messages API accepts a top-level \`system\` parameter, not "system" as an input message role.` }
    }
    const blocks = typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : message.content
    if (!Array.isArray(blocks) || blocks.length === 0) return { message: `messages.${i}: all messages must have non-empty content` }
    for (const [j, block] of blocks.entries()) {
      if (block?.type === 'text' && (typeof block.text !== 'string' || block.text === '')) return { message: `messages.${i}.content.${j}: text content blocks must be non-empty` }
      if (block?.type === 'tool_use' && message.role !== 'assistant') return { message: `messages.${i}.content.${j}: tool_use blocks are only allowed in assistant messages` }
      if (block?.type === 'tool_result' && message.role !== 'user') return { message: `messages.${i}.content.${j}: tool_result blocks are only allowed in user messages` }
    }
    const uses = blocks.filter((b: any) => b?.type === 'tool_use').map((b: any) => b.id)
    if (uses.length > 0) {
      const next = body.messages[i + 1]
      const results: any[] = Array.isArray(next?.content) ? next.content : []
      const leading = results.slice(0, uses.length)
      if (next?.role === 'user' && !uses.every((id: string) => leading.some(b => b?.type === 'tool_result' && b.tool_use_id === id))) {
        return { message: `messages.${i + 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${uses.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.` }
      }
    }
  }
  return undefined
}
