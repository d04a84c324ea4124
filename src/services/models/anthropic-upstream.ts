/**
 * The upstream adapter for the Anthropic Messages API: takes OpenAI
 * chat-completions requests and answers in OpenAI format, translating both
 * ways, streams included.
 */
import { AnthropicStreamTranslator } from './anthropic-stream.js'
import { fromAnthropicError, fromAnthropicMessage, toAnthropicRequest } from './anthropic-translate.js'
import { ANTHROPIC_VERSION, DEFAULT_ANTHROPIC_MAX_TOKENS, MAX_JSON_RESPONSE_BYTES } from './constants.js'
import { redactor, UpstreamError } from './errors.js'
import { relayEventStream, type EventRelay } from './event-relay.js'
import { formatSseData, SSE_DONE, utf8, type SseEvent } from './sse.js'
import { postAsAdapter, UpstreamEndpoint, type UpstreamHttpResponse } from './upstream-http.js'
import type { AnthropicMessage, AnthropicStreamEvent } from './anthropic-types.js'
import type { ModelRequest, ModelResponse, ModelUpstream, UpstreamInit, UpstreamTarget } from './upstream.js'

export class AnthropicUpstream implements ModelUpstream {
  readonly dialect = 'anthropic'
  private readonly redact: (text: string) => string
  private readonly messages: UpstreamEndpoint

  constructor (private readonly target: UpstreamTarget, private readonly init: UpstreamInit) {
    this.redact = redactor(target.apiKey)
    // accept both https://api.anthropic.com and https://api.anthropic.com/v1
    const base = target.baseUrl.replace(/\/+$/, '')
    this.messages = new UpstreamEndpoint(base.endsWith('/v1') ? `${base}/messages` : `${base}/v1/messages`)
  }

  async request (request: ModelRequest): Promise<ModelResponse> {
    if (request.route !== 'chat/completions') {
      throw UpstreamError.of(400, 'invalid_request_error', `this model's upstream speaks the Anthropic Messages API, which has no /v1/${request.route}; use /v1/chat/completions`, { code: 'unsupported_route' })
    }
    const body = toAnthropicRequest(request.body, {
      upstreamModel: this.target.upstreamModel,
      defaultMaxTokens: this.init.defaultMaxTokens ?? DEFAULT_ANTHROPIC_MAX_TOKENS
    })
    const response = await postAsAdapter(this.target, this.init, {
      endpoint: this.messages,
      headers: {
        'anthropic-version': ANTHROPIC_VERSION,
        ...(this.target.apiKey != null && this.target.apiKey !== '' ? { 'x-api-key': this.target.apiKey } : {})
      },
      body,
      stream: body.stream === true,
      signal: request.signal,
      redact: this.redact,
      refusal: fromAnthropicError
    })
    if (response.isEventStream) {
      const includeUsage = (request.body.stream_options as any)?.include_usage === true
      return { status: 200, contentType: 'text/event-stream', body: relayEventStream(response, new AnthropicEventRelay(new AnthropicStreamTranslator({ includeUsage, redact: this.redact })), 'Anthropic upstream') }
    }
    return { status: 200, contentType: 'application/json', body: translateWhole(response) }
  }
}

/** Feeds Anthropic events to the translator; the answer is complete at message_stop. */
class AnthropicEventRelay implements EventRelay {
  constructor (private readonly translator: AnthropicStreamTranslator) {}

  get complete (): boolean {
    return this.translator.finished
  }

  event (event: SseEvent): string {
    return this.translator.push(parseEvent(event)).map(formatSseData).join('')
  }

  end (): string {
    if (!this.translator.finished) {
      throw UpstreamError.of(502, 'upstream_stream_cut', 'the Anthropic upstream ended the stream before message_stop')
    }
    return SSE_DONE
  }
}

function parseEvent (event: SseEvent): AnthropicStreamEvent {
  let data: any
  try {
    data = JSON.parse(event.data)
  } catch {
    throw UpstreamError.of(502, 'upstream_error', `the Anthropic upstream sent an event that is not JSON: ${event.data.slice(0, 100)}`)
  }
  if (data == null || typeof data.type !== 'string') {
    throw UpstreamError.of(502, 'upstream_error', `the Anthropic upstream sent an event without a type: ${event.data.slice(0, 100)}`)
  }
  return data
}

async function * translateWhole (response: UpstreamHttpResponse): AsyncGenerator<Uint8Array> {
  const bytes = await response.bytes(MAX_JSON_RESPONSE_BYTES, 'answer')
  let message: AnthropicMessage
  try {
    message = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    throw UpstreamError.of(502, 'upstream_stream_cut', `the Anthropic upstream's answer is not complete JSON (${bytes.byteLength} bytes)`)
  }
  yield utf8(JSON.stringify(fromAnthropicMessage(message)))
}
