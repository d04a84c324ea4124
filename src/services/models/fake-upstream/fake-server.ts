/**
 * The HTTP plumbing the fake upstreams share: a loopback server on a free
 * port that records every request and how its exchange ended, and a
 * back-pressured writer that stops when the client goes away.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { logger } from '@libp2p/logger'
import { drained } from '../../http/local-server.js'
import type { Startable } from '@libp2p/interface'

/** How an exchange ended: answered in full, closed by the client first, or cut by the fake on purpose. */
export type ExchangeOutcome = 'completed' | 'client-closed' | 'died'

export interface RecordedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** The parsed JSON body, or undefined when there was none or it was not JSON. */
  body: any
  /** Counted stream chunks written so far. */
  chunksWritten: number
  /** Writes that had to wait for the client to read (back-pressure reached the fake). */
  stalls: number
  /** Set once the exchange ended. */
  outcome?: ExchangeOutcome
  /** Resolves when the exchange ended. */
  readonly ended: Promise<ExchangeOutcome>
}

/** Bodies above this are refused: a fake has no business with more. */
const MAX_REQUEST_BYTES = 16 * 1024 * 1024

export abstract class FakeUpstreamServer implements Startable {
  /** Every request received, in arrival order. */
  readonly requests: RecordedRequest[] = []
  protected readonly log
  private readonly server: Server
  private readonly arrivals = new Set<() => void>()

  constructor (name: string) {
    this.log = logger(`clawmatrix:fake-upstream:${name}`)
    this.server = createServer((req, res) => { void this.receive(req, res) })
  }

  async start (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject)
        resolve()
      })
    })
  }

  async stop (): Promise<void> {
    if (!this.server.listening) return
    this.server.closeAllConnections()
    await new Promise<void>(resolve => this.server.close(() => { resolve() }))
  }

  /** http://127.0.0.1:<port> */
  get origin (): string {
    const address = this.server.address()
    if (address == null || typeof address === 'string') throw new Error('the fake upstream is not listening')
    return `http://127.0.0.1:${address.port}`
  }

  /** Resolves with the n-th request (1-based) once it has arrived. */
  async nthRequest (n: number, signal?: AbortSignal): Promise<RecordedRequest> {
    while (this.requests.length < n) {
      signal?.throwIfAborted()
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => { this.arrivals.delete(arrived); reject(signal?.reason) }
        const arrived = (): void => { signal?.removeEventListener('abort', onAbort); resolve() }
        this.arrivals.add(arrived)
        signal?.addEventListener('abort', onAbort, { once: true })
      })
    }
    return this.requests[n - 1]!
  }

  protected abstract handle (request: RecordedRequest, res: ServerResponse): Promise<void>

  private async receive (req: IncomingMessage, res: ServerResponse): Promise<void> {
    let died = false
    let resolveEnded!: (outcome: ExchangeOutcome) => void
    const request: RecordedRequest = {
      method: req.method ?? 'GET',
      path: new URL(req.url ?? '/', 'http://localhost').pathname,
      headers: req.headers,
      body: undefined,
      chunksWritten: 0,
      stalls: 0,
      ended: new Promise(resolve => { resolveEnded = resolve })
    }
    res.on('close', () => {
      request.outcome = died ? 'died' : res.writableFinished ? 'completed' : 'client-closed'
      this.log('%s %s ended: %s', request.method, request.path, request.outcome)
      resolveEnded(request.outcome)
    })
    // destroying the socket on purpose is recorded as 'died', not as the client leaving
    res.once('fake:die', () => { died = true })
    try {
      const text = await readBody(req)
      if (text !== '') {
        try {
          request.body = JSON.parse(text)
        } catch {}
      }
      this.requests.push(request)
      for (const arrived of [...this.arrivals]) arrived()
      this.arrivals.clear()
      await this.handle(request, res)
    } catch (err: any) {
      this.log.error('%s %s failed: %e', request.method, request.path, err)
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { message: err.message, type: 'server_error', param: null, code: null } }))
      } else {
        res.destroy()
      }
    }
  }
}

async function readBody (req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = []
  let length = 0
  for await (const chunk of req) {
    length += chunk.length
    if (length > MAX_REQUEST_BYTES) throw new Error(`request body over ${MAX_REQUEST_BYTES} bytes`)
    parts.push(chunk)
  }
  return Buffer.concat(parts).toString('utf8')
}

/**
 * Cuts the connection without an HTTP end, as a crashed upstream would,
 * once what was written before has reached the socket (Node corks a
 * response's writes until the next tick; destroying at once would drop them).
 */
export function die (res: ServerResponse): void {
  res.emit('fake:die')
  const socket = res.socket
  if (socket == null) {
    res.destroy()
    return
  }
  while (socket.writableCorked > 0) socket.uncork()
  socket.write('', () => { socket.destroy() })
}

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/**
 * Writes with back-pressure. Resolves false when the client went away, so a
 * streaming loop stops instead of writing into a closed socket.
 */
export async function write (res: ServerResponse, text: string, request?: RecordedRequest): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return false
  if (res.write(text)) return true
  if (request != null) request.stalls++
  return await drained(res)
}

/** Waits before a chunk: the reply's fixed delay, then its gate (a test holding the stream). */
export async function pace (index: number, delayMs: number | undefined, gate: ((index: number) => Promise<void> | void) | undefined): Promise<void> {
  if (delayMs != null && delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs))
  await gate?.(index)
}

/** A stream as the fakes write it: `head`, then the counted `chunks`, then `tail`. */
export interface StreamPlan {
  head: string
  chunks: string[]
  tail: string
  /** Written instead of the rest when the reply asks for a mid-stream error event. */
  errorEvent: string
}

export interface StreamFaults {
  delayMs?: number
  beforeChunk?: (index: number) => Promise<void> | void
  dieAfterChunks?: number
  endAfterChunks?: number
  errorEventAfterChunks?: number
}

/** Writes an event stream with the faults a reply asked for, at the chunk count it named. */
export async function writeEventStream (request: RecordedRequest, res: ServerResponse, plan: StreamPlan, faults: StreamFaults): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' })
  if (!await write(res, plan.head)) return
  for (let i = 0; i <= plan.chunks.length; i++) {
    if (faults.dieAfterChunks === i) {
      die(res)
      return
    }
    if (faults.endAfterChunks === i) {
      res.end()
      return
    }
    if (faults.errorEventAfterChunks === i) {
      await write(res, plan.errorEvent)
      res.end()
      return
    }
    if (i === plan.chunks.length) break
    await pace(i, faults.delayMs, faults.beforeChunk)
    if (!await write(res, plan.chunks[i]!, request)) return
    request.chunksWritten++
  }
  if (!await write(res, plan.tail, request)) return
  res.end()
}
