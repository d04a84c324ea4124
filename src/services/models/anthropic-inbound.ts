/**
 * Anthropic Messages clients on an OpenAI-format proxy: a Messages request
 * becomes a chat-completions request, and the OpenAI answer (whole or
 * streamed) becomes a Messages answer, so a client that speaks only
 * Anthropic's API can use any cluster model, whatever its upstream speaks.
 * The other direction (OpenAI clients, Anthropic upstreams) is in
 * ./anthropic-translate.ts and ./anthropic-stream.ts.
 */
import { invalidRequest, type OpenAIErrorBody } from './errors.js'
import { formatSseEvent } from './sse.js'
import type { AnthropicMessage, AnthropicResponseBlock } from './anthropic-types.js'
import type { ChatCompletionChunk, OpenAIFinishReason } from './openai-types.js'

/**
 * A Messages request as a chat-completions body. System text becomes the
 * first message, tool results become `tool` messages, tool uses become
 * `tool_calls`. Throws UpstreamError 400 naming the field.
 */
export function chatRequestFromAnthropic (body: Record<string, any>): Record<string, unknown> {
  if (typeof body.model !== 'string' || body.model === '') throw invalidRequest('model', 'expected the model id as a string')
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) throw invalidRequest('max_tokens', `expected a positive integer, got ${describe(body.max_tokens)}`)
  if (!Array.isArray(body.messages)) throw invalidRequest('messages', `expected an array, got ${describe(body.messages)}`)
  const messages: Array<Record<string, unknown>> = []
  const system = systemText(body.system)
  if (system !== '') messages.push({ role: 'system', content: system })
  body.messages.forEach((message: any, i: number) => {
    const where = `messages.${i}`
    if (message?.role !== 'user' && message?.role !== 'assistant') throw invalidRequest(`${where}.role`, `expected "user" or "assistant", got ${describe(message?.role)}`)
    const blocks = typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : message.content
    if (!Array.isArray(blocks)) throw invalidRequest(`${where}.content`, 'expected a string or an array of content blocks')
    if (message.role === 'assistant') messages.push(assistantMessage(blocks, where))
    else messages.push(...userMessages(blocks, where))
  })
  const out: Record<string, unknown> = { model: body.model, messages, max_tokens: body.max_tokens }
  if (typeof body.temperature === 'number') out.temperature = body.temperature
  if (typeof body.top_p === 'number') out.top_p = body.top_p
  if (Array.isArray(body.stop_sequences) && body.stop_sequences.length > 0) out.stop = body.stop_sequences
  if (typeof body.metadata?.user_id === 'string') out.user = body.metadata.user_id
  if (Array.isArray(body.tools)) {
    out.tools = body.tools.map((tool: any, i: number) => {
      if (typeof tool?.name !== 'string') throw invalidRequest(`tools.${i}.name`, 'expected a string')
      return { type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.input_schema ?? { type: 'object' } } }
    })
  }
  const choice = body.tool_choice
  if (choice?.type === 'auto') out.tool_choice = 'auto'
  else if (choice?.type === 'any') out.tool_choice = 'required'
  else if (choice?.type === 'none') out.tool_choice = 'none'
  else if (choice?.type === 'tool') out.tool_choice = { type: 'function', function: { name: choice.name } }
  if (choice?.disable_parallel_tool_use === true) out.parallel_tool_calls = false
  if (body.stream === true) {
    out.stream = true
    out.stream_options = { include_usage: true }
  }
  if (body.clawmatrix != null) out.clawmatrix = body.clawmatrix
  return out
}

function systemText (system: unknown): string {
  if (system == null) return ''
  if (typeof system === 'string') return system
  if (!Array.isArray(system)) throw invalidRequest('system', 'expected a string or an array of text blocks')
  return system.map((block: any, i) => {
    if (block?.type !== 'text' || typeof block.text !== 'string') throw invalidRequest(`system.${i}`, 'expected a text block')
    return block.text
  }).join('\n\n')
}

function userMessages (blocks: any[], where: string): Array<Record<string, unknown>> {
  const results: Array<Record<string, unknown>> = []
  const parts: Array<Record<string, unknown>> = []
  blocks.forEach((block, j) => {
    const at = `${where}.content.${j}`
    switch (block?.type) {
      case 'text':
        parts.push({ type: 'text', text: String(block.text ?? '') })
        return
      case 'image':
        parts.push({ type: 'image_url', image_url: { url: imageUrl(block.source, at) } })
        return
      case 'tool_result':
        results.push({ role: 'tool', tool_call_id: String(block.tool_use_id ?? ''), content: toolResultText(block.content, at) })
        return
      default:
        throw invalidRequest(`${at}.type`, `got ${describe(block?.type)}; expected "text", "image" or "tool_result"`)
    }
  })
  // Tool results answer the previous assistant turn, so they come before the user's new words.
  if (parts.length > 0) results.push({ role: 'user', content: parts.every(p => p.type === 'text') ? parts.map(p => p.text).join('\n') : parts })
  return results
}

function assistantMessage (blocks: any[], where: string): Record<string, unknown> {
  let text = ''
  const calls: Array<Record<string, unknown>> = []
  blocks.forEach((block, j) => {
    if (block?.type === 'text') text += String(block.text ?? '')
    else if (block?.type === 'tool_use') calls.push({ id: String(block.id ?? ''), type: 'function', function: { name: String(block.name ?? ''), arguments: JSON.stringify(block.input ?? {}) } })
    else if (block?.type !== 'thinking' && block?.type !== 'redacted_thinking') {
      throw invalidRequest(`${where}.content.${j}.type`, `got ${describe(block?.type)}; expected "text" or "tool_use"`)
    }
  })
  return { role: 'assistant', content: text === '' && calls.length > 0 ? null : text, ...(calls.length > 0 ? { tool_calls: calls } : {}) }
}

function imageUrl (source: any, where: string): string {
  if (source?.type === 'base64' && typeof source.data === 'string') return `data:${String(source.media_type)};base64,${source.data}`
  if (source?.type === 'url' && typeof source.url === 'string') return source.url
  throw invalidRequest(`${where}.source`, 'expected a base64 or url image source')
}

function toolResultText (content: unknown, where: string): string {
  if (content == null) return ''
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) throw invalidRequest(`${where}.content`, 'expected a string or an array of text blocks')
  return content.filter((b: any) => b?.type === 'text').map((b: any) => String(b.text ?? '')).join('\n')
}

const STOP_REASONS: Record<OpenAIFinishReason, string> = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', content_filter: 'refusal' }

function stopReason (finish: string | null | undefined): string | null {
  return finish == null ? null : STOP_REASONS[finish as OpenAIFinishReason] ?? 'end_turn'
}

/** A whole chat completion as a Messages answer, under the model name the client asked for. */
export function anthropicMessageFromChat (completion: any, model: string): AnthropicMessage {
  const choice = completion?.choices?.[0]
  const content: AnthropicResponseBlock[] = []
  const text = choice?.message?.content
  if (typeof text === 'string' && text !== '') content.push({ type: 'text', text })
  for (const call of choice?.message?.tool_calls ?? []) {
    content.push({ type: 'tool_use', id: call.id, name: call.function?.name, input: parseArguments(call.function?.arguments) })
  }
  return {
    id: anthropicId(completion?.id),
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: stopReason(choice?.finish_reason) ?? 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: completion?.usage?.prompt_tokens ?? 0, output_tokens: completion?.usage?.completion_tokens ?? 0 }
  }
}

/**
 * OpenAI chunks in, Anthropic stream events out: message_start at the first
 * chunk, a content block per text run and per tool call, then message_delta
 * (stop reason, usage) and message_stop once the stream is done.
 */
export class AnthropicEventWriter {
  private started = false
  private stopped = false
  /** The open content block: its Anthropic index and what it is. */
  private block?: { index: number, kind: 'text' | number }
  private nextIndex = 0
  private finish: string | null = null
  private usage = { input_tokens: 0, output_tokens: 0 }

  constructor (private readonly model: string) {}

  /** The events for one OpenAI chunk. */
  chunk (chunk: ChatCompletionChunk): string {
    let out = this.start(chunk)
    if (chunk.usage != null) this.usage = { input_tokens: chunk.usage.prompt_tokens ?? 0, output_tokens: chunk.usage.completion_tokens ?? 0 }
    const choice = chunk.choices?.[0]
    const delta = choice?.delta
    if (typeof delta?.content === 'string' && delta.content !== '') {
      out += this.open('text', { type: 'text', text: '' })
      out += event('content_block_delta', { type: 'content_block_delta', index: this.block!.index, delta: { type: 'text_delta', text: delta.content } })
    }
    for (const call of delta?.tool_calls ?? []) {
      if (call.id != null || this.block?.kind !== call.index) {
        out += this.open(call.index, { type: 'tool_use', id: call.id ?? '', name: call.function?.name ?? '', input: {} }, true)
      }
      if (call.function?.arguments != null && call.function.arguments !== '') {
        out += event('content_block_delta', { type: 'content_block_delta', index: this.block!.index, delta: { type: 'input_json_delta', partial_json: call.function.arguments } })
      }
    }
    if (choice?.finish_reason != null) this.finish = choice.finish_reason
    return out
  }

  /** The closing events once the OpenAI stream said [DONE]. */
  end (): string {
    if (this.stopped) return ''
    this.stopped = true
    let out = this.start()
    out += this.close()
    out += event('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason(this.finish) ?? 'end_turn', stop_sequence: null }, usage: { output_tokens: this.usage.output_tokens, input_tokens: this.usage.input_tokens } })
    out += event('message_stop', { type: 'message_stop' })
    return out
  }

  private start (chunk?: ChatCompletionChunk): string {
    if (this.started) return ''
    this.started = true
    const message = { id: anthropicId(chunk?.id), type: 'message', role: 'assistant', model: this.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } }
    return event('message_start', { type: 'message_start', message })
  }

  private open (kind: 'text' | number, contentBlock: Record<string, unknown>, always = false): string {
    if (!always && this.block?.kind === kind) return ''
    const out = this.close()
    this.block = { index: this.nextIndex++, kind }
    return out + event('content_block_start', { type: 'content_block_start', index: this.block.index, content_block: contentBlock })
  }

  private close (): string {
    if (this.block == null) return ''
    const out = event('content_block_stop', { type: 'content_block_stop', index: this.block.index })
    this.block = undefined
    return out
  }
}

/** An OpenAI error body in Anthropic's shape. */
export function anthropicError (status: number, body: OpenAIErrorBody): { type: 'error', error: { type: string, message: string } } {
  return { type: 'error', error: { type: anthropicErrorType(status), message: body.error.message } }
}

export function anthropicErrorType (status: number): string {
  switch (status) {
    case 400: return 'invalid_request_error'
    case 401: return 'authentication_error'
    case 403: return 'permission_error'
    case 404: return 'not_found_error'
    case 413: return 'request_too_large'
    case 429: return 'rate_limit_error'
    case 503: case 529: return 'overloaded_error'
    default: return 'api_error'
  }
}

export function anthropicEvent (name: string, data: unknown): string {
  return event(name, data)
}

function event (name: string, data: unknown): string {
  return formatSseEvent({ event: name, data: JSON.stringify(data) })
}

function anthropicId (id: unknown): string {
  return typeof id === 'string' && id.startsWith('msg_') ? id : `msg_${typeof id === 'string' && id !== '' ? id.replace(/^chatcmpl-/, '') : Date.now().toString(36)}`
}

function parseArguments (args: unknown): unknown {
  if (typeof args !== 'string' || args === '') return {}
  try {
    return JSON.parse(args)
  } catch {
    return {}
  }
}

function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}
