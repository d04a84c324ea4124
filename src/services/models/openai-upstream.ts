/**
 * The upstream adapter for OpenAI-compatible servers (Ollama, vLLM, LM
 * Studio, OpenAI, OpenRouter): the client's body goes out as is, with only
 * `model` replaced, and the answer comes back event by event.
 */
import { MAX_JSON_RESPONSE_BYTES } from './constants.js'
import { openAIErrorFromUpstream, redactor, UpstreamError } from './errors.js'
import { relayEventStream, type EventRelay } from './event-relay.js'
import { formatSseEvent, SSE_DONE, type SseEvent } from './sse.js'
import { postAsAdapter, UpstreamEndpoint, type UpstreamHttpResponse } from './upstream-http.js'
import { MODEL_ROUTES, type ModelRequest, type ModelResponse, type ModelRoute, type ModelUpstream, type UpstreamInit, type UpstreamTarget } from './upstream.js'

export class OpenAIUpstream implements ModelUpstream {
  readonly dialect = 'openai'
  private readonly redact: (text: string) => string
  /** Each route's URL, taken apart once. */
  private readonly endpoints: Map<ModelRoute, UpstreamEndpoint>

  constructor (private readonly target: UpstreamTarget, private readonly init: UpstreamInit) {
    this.redact = redactor(target.apiKey)
    const baseUrl = target.baseUrl.replace(/\/+$/, '')
    this.endpoints = new Map(MODEL_ROUTES.map(route => [route, new UpstreamEndpoint(`${baseUrl}/${route}`)]))
  }

  async request (request: ModelRequest): Promise<ModelResponse> {
    const endpoint = this.endpoints.get(request.route)
    if (endpoint == null) {
      throw UpstreamError.of(404, 'invalid_request_error', `unknown route /v1/${request.route}; expected one of ${MODEL_ROUTES.map(r => `/v1/${r}`).join(', ')}`)
    }
    const response = await postAsAdapter(this.target, this.init, {
      endpoint,
      headers: this.target.apiKey != null && this.target.apiKey !== '' ? { authorization: `Bearer ${this.target.apiKey}` } : {},
      body: { ...request.body, model: this.target.upstreamModel },
      stream: request.body.stream === true,
      signal: request.signal,
      redact: this.redact,
      refusal: openAIErrorFromUpstream
    })
    if (response.isEventStream) {
      const relay = request.route === 'responses' ? new ResponsesEventRelay(this.redact) : new OpenAIEventRelay(this.redact)
      return { status: response.status, contentType: 'text/event-stream', body: relayEventStream(response, relay, 'upstream') }
    }
    return { status: response.status, contentType: 'application/json', body: wholeJson(response) }
  }
}

/**
 * Re-emits the upstream's events and decides how the stream ended: `[DONE]`,
 * or a clean close after a finish_reason (some servers omit `[DONE]`; one is
 * added), is the end; anything else is a cut.
 */
class OpenAIEventRelay implements EventRelay {
  complete = false
  private finishSeen = false

  constructor (private readonly redact: (text: string) => string) {}

  event (event: SseEvent): string {
    if (event.data === '[DONE]') {
      this.complete = true
      return SSE_DONE
    }
    // Only an event that mentions an error is parsed: the others pass as text, and a finish reason
    // is found by its text (a JSON string value after the key; null while the answer goes on).
    if (event.data.charCodeAt(0) !== 0x7b) throw notJson(event.data)
    if (event.data.includes('"error"')) {
      const chunk = parseChunk(event.data)
      if (chunk?.error != null) throw openAIErrorFromUpstream(502, JSON.stringify({ error: chunk.error }), this.redact)
    }
    if (!this.finishSeen && FINISH_REASON.test(event.data)) this.finishSeen = true
    return formatSseEvent({ data: event.data })
  }

  end (): string {
    if (this.complete) return ''
    if (!this.finishSeen) {
      throw UpstreamError.of(502, 'upstream_stream_cut', 'the upstream ended the stream before the answer was complete (no finish_reason, no [DONE])')
    }
    return SSE_DONE
  }
}

const FINISH_REASON = /"finish_reason"\s*:\s*"/

/**
 * The Responses API's events pass through with their names. The answer is
 * complete at `response.completed`, `response.incomplete` or
 * `response.failed`; an `error` event fails it.
 */
class ResponsesEventRelay implements EventRelay {
  complete = false

  constructor (private readonly redact: (text: string) => string) {}

  event (event: SseEvent): string {
    const type = event.event ?? parseChunk(event.data)?.type
    if (type === 'error') {
      const data = parseChunk(event.data)
      throw openAIErrorFromUpstream(502, JSON.stringify({ error: data?.error ?? data }), this.redact)
    }
    if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') this.complete = true
    return formatSseEvent(event)
  }

  end (): string {
    if (!this.complete) throw UpstreamError.of(502, 'upstream_stream_cut', 'the upstream ended the stream before the response was complete (no response.completed)')
    return ''
  }
}

function parseChunk (data: string): any {
  try {
    return JSON.parse(data)
  } catch {
    throw notJson(data)
  }
}

function notJson (data: string): UpstreamError {
  return UpstreamError.of(502, 'upstream_error', `the upstream sent an event that is not JSON: ${data.slice(0, 100)}`)
}

/**
 * A non-streamed answer, read whole and checked to be JSON: a body cut at a
 * connection close would otherwise pass as a short answer.
 */
async function * wholeJson (response: UpstreamHttpResponse): AsyncGenerator<Uint8Array> {
  const bytes = await response.bytes(MAX_JSON_RESPONSE_BYTES, 'answer')
  try {
    JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    throw UpstreamError.of(502, 'upstream_stream_cut', `the upstream's answer is not complete JSON (${bytes.byteLength} bytes)`)
  }
  yield bytes
}
