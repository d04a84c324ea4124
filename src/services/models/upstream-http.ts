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
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { DEFAULT_IDLE_SOCKET_MS, DEFAULT_IDLE_TIMEOUT_MS, DRAIN_MAX_BYTES, DRAIN_MS, DEFAULT_RESPONSE_TIMEOUT_MS, MAX_ERROR_BODY_BYTES } from './constants.js'
import { UpstreamError, UpstreamTimeout } from './errors.js'
import type { UpstreamInit, UpstreamTarget } from './upstream.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface UpstreamPostInit {
  endpoint: UpstreamEndpoint
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
 * An upstream URL taken apart once, by the adapter that posts to it, into
 * the options node:http wants: a URL object given to http.request is taken
 * apart again on every request. A URL that cannot be used fails each
 * request, as it did when each request parsed it (an embedder's target
 * is not validated beforehand).
 */
export class UpstreamEndpoint {
  /** Origin and path, without credentials or query (which may hold secrets): what logs and errors show. */
  readonly safe: string
  /** What http.request takes (`protocol`, `hostname`, `port`, `path`, `auth`), or why there is none. */
  readonly options: UpstreamRequestOptions | Error

  /** @param href the whole URL, credentials included: never shown */
  constructor (readonly href: string) {
    this.safe = safeUrl(href)
    try {
      const url = new URL(href)
      const protocol = url.protocol
      if (protocol !== 'http:' && protocol !== 'https:') throw new TypeError(`unsupported protocol ${protocol}`)
      this.options = {
        protocol,
        // node:http wants an IPv6 host without its brackets
        hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        auth: url.username !== '' || url.password !== '' ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined
      }
    } catch (err: any) {
      this.options = err
    }
  }
}

interface UpstreamRequestOptions {
  protocol: 'http:' | 'https:'
  hostname: string
  port?: number
  path: string
  auth?: string
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
    private readonly init: UpstreamPostInit,
    /** Ends the exchange's watch on the caller's signal, once the body was read or left. */
    private readonly done: () => void
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
    const reader = new BodyReader(this.response)
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
        const chunk = await reader.next()
        reading = false
        if (chunk == null) {
          finished = true
          return
        }
        yield chunk
      }
    } catch (err) {
      throw classify(err, this.controller, this.init, 'mid-response')
    } finally {
      clearTimeout(stalled)
      if (!finished) {
        if (this.answered) await this.drain(reader)
        else this.cancel()
      }
      reader.stop()
      this.done()
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
  private async drain (reader: BodyReader): Promise<void> {
    const timer = setTimeout(() => { this.cancel() }, DRAIN_MS)
    let length = 0
    try {
      while (true) {
        const chunk = await reader.next()
        if (chunk == null) return
        length += chunk.byteLength
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
    return UpstreamError.of(502, 'upstream_error', this.init.redact(`the upstream redirected (${this.status}${location == null ? '' : ` to ${safeUrl(location, this.init.endpoint.href)}`}); set baseUrl to the final URL`))
  }

  cancel (): void {
    this.controller.abort(new Error('the response was not read to its end'))
    this.response.destroy()
    this.done()
  }
}

function prematureClose (): Error {
  return new Error('the connection closed before the end of the body')
}

/**
 * Pulls a response body with `read()` and the stream's events, as its async
 * iterator does underneath, without the iterator's generator and the
 * end-of-stream watch it sets up per body: those were a measurable share of
 * a proxied answer's way out. `next()` gives the next chunk, null at the
 * body's proper end, and throws when the response failed or closed before it.
 */
class BodyReader {
  private ended = false
  private failure?: Error
  private wake?: () => void

  constructor (private readonly response: IncomingMessage) {
    // Failed before anyone read it (the request was aborted while its head was handed over): no event will say so.
    if (response.destroyed && !response.readableEnded) this.failure = response.errored ?? prematureClose()
    response.on('readable', this.onEvent)
    response.on('end', this.onEnd)
    response.on('error', this.onError)
    response.on('close', this.onClose)
  }

  async next (): Promise<Buffer | null> {
    while (true) {
      const chunk: Buffer | null = this.response.destroyed ? null : this.response.read()
      if (chunk != null) return chunk
      if (this.failure != null) throw this.failure
      if (this.ended) return null
      await new Promise<void>(resolve => { this.wake = resolve })
    }
  }

  /** Stops listening; the response is done with. */
  stop (): void {
    this.response.off('readable', this.onEvent)
    this.response.off('end', this.onEnd)
    this.response.off('error', this.onError)
    this.response.off('close', this.onClose)
  }

  private readonly onEvent = (): void => {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  private readonly onEnd = (): void => {
    this.ended = true
    this.onEvent()
  }

  private readonly onError = (err: Error): void => {
    this.failure ??= err
    this.onEvent()
  }

  private readonly onClose = (): void => {
    if (!this.ended) this.failure ??= prematureClose()
    this.onEvent()
  }
}

/** One request of a dialect's adapter (./openai-upstream.ts, ./anthropic-upstream.ts). */
export interface AdapterPost {
  endpoint: UpstreamEndpoint
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
    endpoint: post.endpoint,
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

/**
 * POSTs JSON to the upstream and resolves once the response headers arrived.
 * One AbortController per exchange: our timeouts and cancel() abort it, and
 * so does the caller's signal, through one listener, kept until the body was
 * read or left; aborting it destroys the request in flight, which fails the
 * response read.
 */
export async function postUpstream (init: UpstreamPostInit): Promise<UpstreamHttpResponse> {
  init.signal?.throwIfAborted()
  const controller = new AbortController()
  const callerAborted = (): void => { controller.abort(init.signal?.reason) }
  init.signal?.addEventListener('abort', callerAborted)
  const done = (): void => { init.signal?.removeEventListener('abort', callerAborted) }
  let response: IncomingMessage
  try {
    response = await withTimeout(controller, init.responseTimeoutMs, 'no-response', async () => await post(init, controller.signal))
  } catch (err) {
    done()
    throw classify(err, controller, init, 'before answering')
  }
  if (init.log.enabled) init.log('POST %s -> %d %s', init.endpoint.safe, response.statusCode, response.headers['content-type'])
  return new UpstreamHttpResponse(response, controller, init, done)
}

/**
 * The request, head and body in one write; resolves with the response once
 * its head arrived. A kept connection the upstream closed while it was idle
 * (its keep-alive timeout, racing the agent's) fails before any answer: the
 * request is sent again on another, as Node's documentation advises; the
 * upstream never saw it.
 */
async function post (init: UpstreamPostInit, signal: AbortSignal): Promise<IncomingMessage> {
  const options = init.endpoint.options
  if (options instanceof Error) throw options
  const client = init.connections?.clientFor(options.protocol) ?? unkept[options.protocol]
  const body = Buffer.from(JSON.stringify(init.body))
  let request: ClientRequest | undefined
  // Not http.request's `signal` option: that watches each request's end with a listener set of its own.
  const abort = (): void => { request?.destroy(signal.reason) }
  signal.addEventListener('abort', abort)
  while (true) {
    const { promise, resolve, reject } = Promise.withResolvers<IncomingMessage>()
    request = client.request({
      ...options,
      method: 'POST',
      headers: { ...init.headers, 'content-length': body.byteLength },
      agent: client.agent
    }, resolve)
    request.on('error', reject)
    request.end(body)
    try {
      return await promise
    } catch (err: any) {
      if (!request.reusedSocket || signal.aborted || !STALE_SOCKET_CODES.has(err?.code)) throw err
      init.log('a kept connection to %s was closed by the upstream (%s): sending again', init.endpoint.safe, err.code)
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
    return UpstreamError.of(502, 'upstream_unreachable', init.redact(`cannot reach the upstream at ${init.endpoint.safe}: ${cause}`))
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
