import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { ComponentLogger, Logger, Startable } from '@libp2p/interface'
import { BindError, bindReason } from '../../node/errors.js'

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>

export interface LocalHttpServerInit {
  host: string
  port: number
  /** Names the config field in bind errors, e.g. "proxyPort". */
  portField: string
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string
  /** The node's logger (../node/logging.ts `nodeLogger`), so every line says which node it is. */
  logger: ComponentLogger
}

/**
 * The node's local HTTP endpoint (status, and later the model proxy). It is
 * bound to loopback unless configured otherwise.
 */
export class LocalHttpServer implements Startable {
  private readonly log: Logger
  private readonly routes = new Map<string, { handler: RouteHandler, open: boolean }>()
  /** Routes for every path under a prefix ("/a2a/"), tried in order after the exact routes. */
  private readonly prefixRoutes: Array<{ method: string, prefix: string, handler: RouteHandler, open: boolean }> = []
  private readonly server: Server

  constructor (private readonly init: LocalHttpServerInit) {
    this.log = init.logger.forComponent('clawmatrix:http')
    this.server = createServer((req, res) => { void this.dispatch(req, res) })
  }

  /**
   * Registers a handler for an exact method and path ("GET /clawmatrix/status").
   * An `open` route skips the bearer token: only for what holds no data, like a page shell.
   * The returned function removes the route again.
   */
  route (method: string, path: string, handler: RouteHandler, options: { open?: boolean } = {}): () => void {
    const key = `${method} ${path}`
    const entry = { handler, open: options.open === true }
    this.routes.set(key, entry)
    return () => { if (this.routes.get(key) === entry) this.routes.delete(key) }
  }

  /** Registers a handler for every path under `prefix` (ending in "/"); the returned function removes it. */
  routePrefix (method: string, prefix: string, handler: RouteHandler, options: { open?: boolean } = {}): () => void {
    const entry = { method, prefix, handler, open: options.open === true }
    this.prefixRoutes.push(entry)
    return () => {
      const at = this.prefixRoutes.indexOf(entry)
      if (at >= 0) this.prefixRoutes.splice(at, 1)
    }
  }

  async start (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new BindError(`cannot serve HTTP on ${this.init.host}:${this.init.port} (${this.init.portField}): ${bindReason(err)}`, { cause: err }))
      }
      this.server.once('error', onError)
      this.server.listen(this.init.port, this.init.host, () => {
        this.server.off('error', onError)
        resolve()
      })
    })
  }

  async stop (): Promise<void> {
    if (!this.server.listening) return
    this.server.closeAllConnections()
    await new Promise<void>(resolve => this.server.close(() => resolve()))
  }

  /** The base URL the server listens on, e.g. http://127.0.0.1:19001 */
  get url (): string {
    const address = this.server.address()
    if (address == null || typeof address === 'string') throw new Error('the HTTP server is not listening')
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    return `http://${host}:${address.port}`
  }

  private authorized (req: IncomingMessage): boolean {
    return bearerMatches(this.init.token, req)
  }

  private async dispatch (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const route = this.routes.get(`${req.method} ${url.pathname}`) ??
      this.prefixRoutes.find(r => r.method === req.method && url.pathname.startsWith(r.prefix))
    if (route?.open !== true && !this.authorized(req)) {
      sendJson(res, 401, { error: { message: 'this endpoint needs "Authorization: Bearer <proxyToken>" (see the node\'s config)', type: 'invalid_request_error', code: 'invalid_api_key' } })
      return
    }
    try {
      if (route == null) {
        sendJson(res, 404, { error: { message: `no route for ${req.method} ${url.pathname}`, type: 'not_found' } })
        return
      }
      await route.handler(req, res, url)
    } catch (err: any) {
      this.log.error('%s %s failed: %e', req.method, url.pathname, err)
      if (!res.headersSent) sendJson(res, 500, { error: { message: err.message, type: 'internal_error' } })
      else res.destroy(err)
    }
  }
}

/**
 * The routes one part serves: registered on the server when the part starts,
 * all removed when it stops, so a stopped part answers nothing.
 */
export class RouteGroup {
  private readonly removers: Array<() => void> = []

  constructor (private readonly http: Pick<LocalHttpServer, 'route'> & Partial<Pick<LocalHttpServer, 'routePrefix'>>) {}

  route (method: string, path: string, handler: RouteHandler, options?: { open?: boolean }): () => void {
    return this.keep(this.http.route(method, path, handler, options))
  }

  routePrefix (method: string, prefix: string, handler: RouteHandler, options?: { open?: boolean }): () => void {
    if (this.http.routePrefix == null) throw new Error('this server takes no prefix routes')
    return this.keep(this.http.routePrefix(method, prefix, handler, options))
  }

  /** Removes every route registered through this group. */
  clear (): void {
    for (const remove of this.removers.splice(0)) remove()
  }

  private keep (remove: () => void): () => void {
    this.removers.push(remove)
    return remove
  }
}

/**
 * A constant-time comparison of the bearer token, when one is set.
 * Anthropic's clients send their key as `x-api-key` instead.
 */
function bearerMatches (expected: string | undefined, req: IncomingMessage): boolean {
  if (expected == null || expected === '') return true
  const apiKey = req.headers['x-api-key']
  const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? (typeof apiKey === 'string' ? apiKey : '')
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest()
  return timingSafeEqual(digest(given), digest(expected))
}

/** Resolves true once the client took what was buffered, false when it went away first. */
export async function drained (res: ServerResponse): Promise<boolean> {
  if (res.destroyed) return false
  return await new Promise<boolean>(resolve => {
    const done = (ok: boolean) => (): void => {
      res.off('drain', onDrain)
      res.off('close', onClose)
      resolve(ok)
    }
    const onDrain = done(true)
    const onClose = done(false)
    res.once('drain', onDrain)
    res.once('close', onClose)
  })
}

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

