/**
 * Anthropic Messages stream events -> OpenAI `chat.completion.chunk`s.
 *
 * message_start gives the id, model and prompt usage; text and tool_use
 * blocks become content and tool_calls deltas (a tool's arguments arrive as
 * input_json_delta pieces, passed on as they come); message_delta carries
 * the stop reason; message_stop ends the answer. Thinking blocks, pings and
 * event types this code does not know are skipped, as Anthropic's versioning
 * policy asks of clients.
 */
import { finishReason, statusOfAnthropicError, usageFrom } from './anthropic-translate.js'
import { UpstreamError } from './errors.js'
import type { AnthropicStreamEvent, AnthropicUsage } from './anthropic-types.js'
import type { ChatCompletionChunk } from './openai-types.js'

type Delta = ChatCompletionChunk['choices'][number]['delta']

export interface AnthropicStreamTranslatorInit {
  /** The client's stream_options.include_usage: a last chunk with usage and no choices. */
  includeUsage?: boolean
  redact?: (text: string) => string
  created?: number
}

export class AnthropicStreamTranslator {
  private readonly created: number
  private readonly includeUsage: boolean
  private readonly redact: (text: string) => string
  /** Anthropic content block index -> OpenAI tool call index. */
  private readonly toolIndex = new Map<number, number>()
  private id = ''
  private model = ''
  private usage: AnthropicUsage = {}
  private started = false
  private stopped = false

  constructor (init: AnthropicStreamTranslatorInit = {}) {
    this.created = init.created ?? Math.floor(Date.now() / 1000)
    this.includeUsage = init.includeUsage === true
    this.redact = init.redact ?? (text => text)
  }

  /** True once message_stop arrived: the answer is complete. */
  get finished (): boolean {
    return this.stopped
  }

  /**
   * The chunks one event yields (often none). Throws UpstreamError for an
   * `error` event and for events out of order.
   */
  push (event: AnthropicStreamEvent): ChatCompletionChunk[] {
    if (event.type === 'error') {
      const message = event.error?.message ?? 'the Anthropic upstream failed mid-stream'
      throw UpstreamError.of(statusOfAnthropicError(event.error?.type), event.error?.type ?? 'upstream_error', this.redact(message))
    }
    if (event.type === 'ping') return []
    if (event.type === 'message_start') {
      if (this.started) throw this.protocolError('a second message_start')
      this.started = true
      this.id = event.message?.id ?? ''
      this.model = event.message?.model ?? ''
      this.usage = { ...event.message?.usage }
      return [this.chunk({ role: 'assistant', content: '' })]
    }
    if (!this.started) throw this.protocolError(`${event.type} before message_start`)
    if (this.stopped) throw this.protocolError(`${event.type} after message_stop`)
    switch (event.type) {
      case 'content_block_start': return this.blockStart(event)
      case 'content_block_delta': return this.blockDelta(event)
      case 'message_delta': {
        this.usage = { ...this.usage, ...definedOnly(event.usage) }
        const reason = event.delta?.stop_reason
        return reason == null ? [] : [this.chunk({}, finishReason(reason))]
      }
      case 'message_stop': {
        this.stopped = true
        if (!this.includeUsage) return []
        return [{ ...this.base(), choices: [], usage: usageFrom(this.usage) }]
      }
      default:
        return [] // content_block_stop, and event types added after this was written
    }
  }

  private blockStart (event: AnthropicStreamEvent): ChatCompletionChunk[] {
    const block = event.content_block
    if (block?.type === 'text') {
      return block.text != null && block.text !== '' ? [this.chunk({ content: block.text })] : []
    }
    if (block?.type === 'tool_use') {
      const index = this.toolIndex.size
      this.toolIndex.set(event.index ?? -1, index)
      // input is {} at the start; the arguments follow as input_json_delta
      return [this.chunk({ tool_calls: [{ index, id: block.id ?? '', type: 'function', function: { name: block.name ?? '', arguments: '' } }] })]
    }
    return []
  }

  private blockDelta (event: AnthropicStreamEvent): ChatCompletionChunk[] {
    const delta = event.delta
    if (delta?.type === 'text_delta' && delta.text != null && delta.text !== '') {
      return [this.chunk({ content: delta.text })]
    }
    if (delta?.type === 'input_json_delta' && delta.partial_json != null && delta.partial_json !== '') {
      const index = this.toolIndex.get(event.index ?? -1)
      if (index == null) throw this.protocolError(`input_json_delta for block ${event.index}, which is not a tool_use block`)
      return [this.chunk({ tool_calls: [{ index, function: { arguments: delta.partial_json } }] })]
    }
    return [] // thinking_delta, signature_delta, citations_delta
  }

  private base (): Omit<ChatCompletionChunk, 'choices'> {
    return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model }
  }

  private chunk (delta: Delta, finish: ChatCompletionChunk['choices'][number]['finish_reason'] = null): ChatCompletionChunk {
    return { ...this.base(), choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] }
  }

  private protocolError (what: string): UpstreamError {
    return UpstreamError.of(502, 'upstream_error', `the Anthropic upstream's stream is out of order: ${what}`)
  }
}

function definedOnly (usage: AnthropicUsage | undefined): AnthropicUsage {
  return Object.fromEntries(Object.entries(usage ?? {}).filter(([, v]) => v != null))
}
