/**
 * One HTTP exchange with an upstream: a POST with a response timeout, an idle
 * timeout between body chunks, the caller's AbortSignal, and failures turned
 * into UpstreamErrors that name what happened without the key.
 *
 * node:http rather than fetch(): on the path to a streamed answer's first
 * byte fetch() spent about 0.5 ms more per request (a Request, Headers and a
 * body stream written in a later turn), and CPU with it; its redirects,
 * decoding and CORS are all unused here.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { DEFAULT_IDLE_SOCKET_MS, DEFAULT_IDLE_TIMEOUT_MS, DRAIN_MAX_BYTES, DRAIN_MS, DEFAULT_RESPONSE_TIMEOUT_MS, MAX_ERROR_BODY_BYTES } from './constants.js'
import { UpstreamError, UpstreamTimeout } from './errors.js'
import type { UpstreamInit, UpstreamTarget } from './upstream.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface UpstreamPostInit {
  url: string
  headers: Record<string, string>
  body: unknown
  signal?: AbortSignal
  responseTimeoutMs: number
  idleTimeoutMs: number
  /** Strips the key from anything surfaced. */
  redact: (text: string) => string
  /** The node's `clawmatrix:models:http` logger. */
  log: Logger
  /** The node's kept connections; without them the request's connection closes after its answer. */
  connections?: UpstreamConnections
}

/**
 * An upstream response whose body is pulled on demand. The body must be
 * consumed or `cancel()`led: either releases the connection.
 */
export class UpstreamHttpResponse {
  readonly status: number
  /** The answer is complete (its end marker came): leaving the body drains the rest instead of closing. */
  private answered = false

  constructor (
    private readonly response: IncomingMessage,
    private readonly controller: AbortController,
    private readonly init: UpstreamPostInit
  ) {
    this.status = response.statusCode ?? 0
  }

  /** A response header (the last one when repeated), or undefined. */
  header (name: string): string | undefined {
    const value = this.response.headers[name]
    return Array.isArray(value) ? value.at(-1) : value
  }

  get contentType (): string {
    return this.header('content-type') ?? ''
  }

  get isEventStream (): boolean {
    return this.contentType.toLowerCase().startsWith('text/event-stream')
  }

  /**
   * The body as it arrives, one upstream read per chunk. Ends only when the
   * upstream ended the HTTP body properly; a cut connection, a stall or the
   * caller's abort throws. Leaving the loop early cancels the request.
   */
  async * chunks (silenceMs = this.init.idleTimeoutMs): AsyncGenerator<Uint8Array> {
    const reader = this.response[Symbol.asyncIterator]() as AsyncIterator<Buffer>
    let finished = false
    // One timer for the whole body, re-armed for every read; it counts only while a read waits
    // (a caller that holds a chunk is back-pressure, not a stalled upstream).
    let reading = false
    const stalled = setTimeout(() => {
      if (reading) this.controller.abort(new UpstreamTimeout(`the upstream sent nothing for ${silenceMs} ms mid-response`))
    }, silenceMs)
    try {
      while (true) {
        reading = true
        stalled.refresh()
        const { done, value } = await reader.next()
        reading = false
        if (done === true) {
          finished = true
          return
        }
        yield value
      }
    } catch (err) {
      throw classify(err, this.controller, this.init, 'mid-response')
    } finally {
      clearTimeout(stalled)
      if (!finished) {
        if (this.answered) await this.drain(reader)
        else this.cancel()
      }
    }
  }

  /**
   * The answer is complete (an SSE stream's `[DONE]` or `message_stop`): the
   * body may be left now without closing the connection. Without this, every
   * streamed answer closed its kept connection (the HTTP end comes after the
   * end marker) and the next request waited for a new one.
   */
  answerComplete (): void {
    this.answered = true
  }

  /**
   * Reads what is left of a body whose answer is complete, usually only the
   * chunked encoding's last chunk (at hand already), so the connection goes
   * back to the node's pool. Awaited, not left running: the request must be
   * over before its signal's end (the served request's) would destroy it. A
   * body that goes on past DRAIN_MAX_BYTES or does not end within DRAIN_MS is
   * cancelled (its connection closed) instead.
   */
  private async drain (reader: AsyncIterator<Buffer>): Promise<void> {
    const timer = setTimeout(() => { this.cancel() }, DRAIN_MS)
    let length = 0
    try {
      while (true) {
        const { done, value } = await reader.next()
        if (done === true) return
        length += value.byteLength
        if (length > DRAIN_MAX_BYTES) {
          this.cancel()
          return
        }
      }
    } catch {
      // cancelled, cut or the node stopped: the connection is gone, nothing to give back
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Reads the whole body up to `maxBytes`; beyond it fails with 502. Some
   * servers send the headers of a non-streamed answer before generating it,
   * so the body may be as slow as a response.
   */
  async bytes (maxBytes: number, what: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = []
    let length = 0
    for await (const chunk of this.chunks(Math.max(this.init.idleTimeoutMs, this.init.responseTimeoutMs))) {
      length += chunk.byteLength
      if (length > maxBytes) {
        throw UpstreamError.of(502, 'upstream_error', `the upstream's ${what} exceeded ${maxBytes} bytes`)
      }
      parts.push(chunk)
    }
    return Buffer.concat(parts)
  }

  /** Up to `maxBytes` of the body as text, the rest dropped: for error bodies. */
  async text (maxBytes: number): Promise<string> {
    const parts: Uint8Array[] = []
    let length = 0
    try {
      for await (const chunk of this.chunks()) {
        parts.push(chunk)
        length += chunk.byteLength
        if (length >= maxBytes) break
      }
    } catch (err) {
      if (this.init.signal?.aborted === true) throw err
      // an error body that was cut still says something
    }
    return Buffer.concat(parts).subarray(0, maxBytes).toString('utf8')
  }

  get isRedirect (): boolean {
    return this.status >= 300 && this.status < 400
  }

  /** Redirects are not followed (they would carry the key along): the operator fixes baseUrl. */
  redirectRefusal (): UpstreamError {
    this.cancel()
    const location = this.header('location')
    return UpstreamError.of(502, 'upstream_error', this.init.redact(`the upstream redirected (${this.status}${location == null ? '' : ` to ${safeUrl(location, this.init.url)}`}); set baseUrl to the final URL`))
  }

  cancel (): void {
    this.controller.abort(new Error('the response was not read to its end'))
    this.response.destroy()
  }
}

/** One request of a dialect's adapter (./openai-upstream.ts, ./anthropic-upstream.ts). */
export interface AdapterPost {
  url: string
  /** The dialect's own headers, its key's among them. */
  headers: Record<string, string>
  body: unknown
  /** Asks for an event stream rather than JSON. */
  stream: boolean
  signal?: AbortSignal
  redact: (text: string) => string
  /** The dialect's reading of an error answer. */
  refusal: (status: number, text: string, redact: (text: string) => string) => UpstreamError
}

/**
 * An adapter's POST, the same for every dialect: the target's extra headers
 * under the dialect's, the node's timeouts and logger. Resolves with a 2xx
 * response; a redirect or an error answer is thrown as an UpstreamError.
 */
export async function postAsAdapter (target: UpstreamTarget, init: UpstreamInit, post: AdapterPost): Promise<UpstreamHttpResponse> {
  const response = await postUpstream({
    log: httpLogger(init.logger),
    url: post.url,
    headers: { ...target.headers, 'content-type': 'application/json', accept: post.stream ? 'text/event-stream' : 'application/json', ...post.headers },
    body: post.body,
    signal: post.signal,
    responseTimeoutMs: init.responseTimeoutMs ?? DEFAULT_RESPONSE_TIMEOUT_MS,
    idleTimeoutMs: init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    redact: post.redact,
    connections: init.connections
  })
  if (response.isRedirect) throw response.redirectRefusal()
  if (response.status < 200 || response.status > 299) {
    throw post.refusal(response.status, await response.text(MAX_ERROR_BODY_BYTES), post.redact)
  }
  return response
}

/** `clawmatrix:models:http` of each node's logger, made once: a logger per request cost a debug instance and an isatty() each. */
const httpLoggers = new WeakMap<ComponentLogger, Logger>()

function httpLogger (logger: ComponentLogger): Logger {
  let log = httpLoggers.get(logger)
  if (log == null) {
    log = logger.forComponent('clawmatrix:models:http')
    httpLoggers.set(logger, log)
  }
  return log
}

export interface UpstreamConnectionsInit {
  /**
   * How long a kept connection may sit idle before it is closed
   * (DEFAULT_IDLE_SOCKET_MS, which says why it is short).
   *
   * @default 4000
   */
  idleSocketMs?: number
}

/**
 * One node's connections to its upstreams, kept between requests as fetch()
 * kept them (node:http sockets have Nagle's algorithm off by default). Each
 * node owns one: made at its start, destroyed at its stop, so a stopped node
 * leaves no socket open to an upstream (a module-level agent outlived every
 * node of a process). A connection idle for `idleSocketMs` is closed; the
 * timer counts only while the connection is idle (Node's agent destroys a
 * timed-out socket only from its free list), so a slow answer is never cut
 * by it. Redirects are never followed: node:http does not.
 */
export class UpstreamConnections {
  private readonly clients: Record<'http:' | 'https:', { request: typeof httpRequest, agent: HttpAgent }>

  constructor (init: UpstreamConnectionsInit = {}) {
    const options = { keepAlive: true, timeout: init.idleSocketMs ?? DEFAULT_IDLE_SOCKET_MS }
    this.clients = {
      'http:': { request: httpRequest, agent: new HttpAgent(options) },
      'https:': { request: httpsRequest, agent: new HttpsAgent(options) }
    }
  }

  /** The request function and agent for a URL's protocol, or undefined when neither http nor https. */
  clientFor (protocol: string): { request: typeof httpRequest, agent: HttpAgent } | undefined {
    return this.clients[protocol as keyof typeof this.clients]
  }

  /** Connections open now, carrying a request or idle. */
  get open (): number {
    return this.count(agent => [...Object.values(agent.sockets), ...Object.values(agent.freeSockets)])
  }

  /** Connections kept open, waiting for the next request. */
  get idle (): number {
    return this.count(agent => Object.values(agent.freeSockets))
  }

  private count (lists: (agent: HttpAgent) => Array<unknown[] | undefined>): number {
    let count = 0
    for (const { agent } of Object.values(this.clients)) for (const list of lists(agent)) count += list?.length ?? 0
    return count
  }

  /** Closes every connection, idle or not; requests still running on one fail. */
  destroy (): void {
    for (const { agent } of Object.values(this.clients)) agent.destroy()
  }
}

/** Without a node's connections: a connection per request, closed after its answer. */
const unkept = {
  'http:': { request: httpRequest, agent: false as const },
  'https:': { request: httpsRequest, agent: false as const }
}

/** POSTs JSON to the upstream and resolves once the response headers arrived. */
export async function postUpstream (init: UpstreamPostInit): Promise<UpstreamHttpResponse> {
  const controller = new AbortController()
  const signal = init.signal == null ? controller.signal : AbortSignal.any([init.signal, controller.signal])
  init.signal?.throwIfAborted()
  let response: IncomingMessage
  try {
    response = await withTimeout(controller, init.responseTimeoutMs, 'no-response', async () => await post(init, signal))
  } catch (err) {
    throw classify(err, controller, init, 'before answering')
  }
  init.log('POST %s -> %d %s', safeUrl(init.url), response.statusCode, response.headers['content-type'])
  return new UpstreamHttpResponse(response, controller, init)
}

/**
 * The request, head and body in one write; resolves with the response once
 * its head arrived. A kept connection the upstream closed while it was idle
 * (its keep-alive timeout, racing the agent's) fails before any answer: the
 * request is sent again on another, as Node's documentation advises; the
 * upstream never saw it.
 */
async function post (init: UpstreamPostInit, signal: AbortSignal): Promise<IncomingMessage> {
  const url = new URL(init.url)
  const client = init.connections?.clientFor(url.protocol) ?? unkept[url.protocol as keyof typeof unkept]
  if (client == null) throw new TypeError(`unsupported protocol ${url.protocol}`)
  const body = Buffer.from(JSON.stringify(init.body))
  while (true) {
    const { promise, resolve, reject } = Promise.withResolvers<IncomingMessage>()
    const request = client.request(url, {
      method: 'POST',
      headers: { ...init.headers, 'content-length': body.byteLength },
      agent: client.agent,
      signal
    }, resolve)
    request.on('error', reject)
    request.end(body)
    try {
      return await promise
    } catch (err: any) {
      if (!request.reusedSocket || signal.aborted || !STALE_SOCKET_CODES.has(err?.code)) throw err
      init.log('a kept connection to %s was closed by the upstream (%s): sending again', safeUrl(init.url), err.code)
    }
  }
}

/** How a request on a kept connection the server had closed fails. */
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE'])

async function withTimeout<T> (controller: AbortController, ms: number, what: 'stalled' | 'no-response', fn: () => Promise<T>): Promise<T> {
  const timer = setTimeout(() => {
    controller.abort(new UpstreamTimeout(what === 'stalled'
      ? `the upstream sent nothing for ${ms} ms mid-response`
      : `the upstream did not answer within ${ms} ms`))
  }, ms)
  try {
    return await fn()
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The caller's own abort is rethrown as is (the caller knows why); our
 * timeouts become 504; anything else is an upstream that went away: 502.
 */
function classify (err: unknown, controller: AbortController, init: UpstreamPostInit, when: string): unknown {
  if (err instanceof UpstreamError) return err
  if (init.signal?.aborted === true) return init.signal.reason
  const reason = controller.signal.reason
  if (reason instanceof UpstreamTimeout) {
    return UpstreamError.of(504, 'upstream_timeout', reason.message)
  }
  const cause = describeCause(err)
  if (when === 'before answering') {
    return UpstreamError.of(502, 'upstream_unreachable', init.redact(`cannot reach the upstream at ${safeUrl(init.url)}: ${cause}`))
  }
  return UpstreamError.of(502, 'upstream_stream_cut', init.redact(`the upstream connection broke ${when}: ${cause}`))
}

function describeCause (err: any): string {
  const cause = err?.cause
  const code = cause?.code ?? err?.code
  const message = cause?.message ?? err?.message ?? String(err)
  return code != null && !String(message).includes(code) ? `${code} ${message}` : String(message)
}

/** The URL without credentials or query, which may hold secrets. */
export function safeUrl (url: string, base?: string): string {
  try {
    const parsed = new URL(url, base)
    return `${parsed.origin}${parsed.pathname}`
  } catch {
    return '(invalid URL)'
  }
}
