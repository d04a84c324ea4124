import { errorTypeOf, type ErrorBody } from '../errors.js'

/** The error body OpenAI-compatible servers answer with, and the local endpoint too; clients parse `error.message`. */
export type OpenAIErrorBody = ErrorBody

/**
 * A request the upstream refused or could not finish. `status` is the HTTP
 * status to answer the client with and `body` the OpenAI-style error JSON:
 * both survive a trip over the mesh as `{ status, body }`.
 */
export class UpstreamError extends Error {
  /** Sent as `Retry-After` when set: the client may try again after this many seconds. */
  retryAfterSeconds?: number

  constructor (readonly status: number, readonly body: OpenAIErrorBody) {
    super(body.error.message)
    this.name = 'UpstreamError'
  }

  static of (status: number, type: string, message: string, extra: { code?: string | number | null, param?: string | null } = {}): UpstreamError {
    return new UpstreamError(status, { error: { message, type, param: extra.param ?? null, code: extra.code ?? null } })
  }

  get type (): string {
    return this.body.error.type
  }

  toJSON (): { status: number, body: OpenAIErrorBody } {
    return { status: this.status, body: this.body }
  }
}

/** A client mistake: names the offending field the way OpenAI does (`param`). */
export function invalidRequest (param: string, message: string): UpstreamError {
  return UpstreamError.of(400, 'invalid_request_error', `${param}: ${message}`, { param })
}

/**
 * Turns an upstream's error answer into an OpenAI-style body. OpenAI-compatible
 * servers mostly answer `{error: {message, ...}}` already; anything else
 * (an HTML page from a proxy, `{detail: ...}`, plain text) is wrapped.
 */
export function openAIErrorFromUpstream (status: number, text: string, redact: (s: string) => string): UpstreamError {
  let json: any
  try {
    json = JSON.parse(text)
  } catch {}
  const error = json?.error
  if (error != null && typeof error === 'object' && typeof error.message === 'string') {
    return new UpstreamError(status, {
      error: {
        ...error,
        message: redact(error.message),
        type: typeof error.type === 'string' ? error.type : typeFromStatus(status),
        param: error.param ?? null,
        code: error.code ?? null
      }
    })
  }
  const detail = typeof error === 'string'
    ? error
    : typeof json?.message === 'string'
      ? json.message
      : typeof json?.detail === 'string' ? json.detail : text.trim().slice(0, 500)
  return UpstreamError.of(status, typeFromStatus(status), redact(`the upstream answered ${status}${detail === '' ? '' : `: ${detail}`}`))
}

/** The `type` of an upstream's error that gave none: OpenAI's for the status, `upstream_error` for a failing upstream. */
export function typeFromStatus (status: number): string {
  return status >= 500 ? 'upstream_error' : errorTypeOf(status)
}

/** Replaces every occurrence of a secret, so an upstream echoing the key cannot leak it. */
export function redactor (secret: string | undefined): (text: string) => string {
  if (secret == null || secret === '') return text => text
  return text => text.split(secret).join('[redacted]')
}

/** An upstream's event stream that is not server-sent events as OpenAI sends them. */
export class SseFormatError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'SseFormatError'
  }
}

/** Reason used to abort the fetch when one of our own timers fires. */
export class UpstreamTimeout extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'UpstreamTimeout'
  }
}
