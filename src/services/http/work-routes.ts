/**
 * The caller API over the node's local HTTP endpoint, for the CLI and
 * scripts: POST /clawmatrix/{handoff,send,tool}. Answers stream as
 * newline-delimited JSON: `output` and `progress` lines while the work runs,
 * then one `result` or `error` line. Closing the request cancels the work on
 * the remote node. A failure before any line goes out gets a proper status.
 */
import { errorCode, HttpRequestError, httpErrorOf } from '../errors.js'
import type { CallOptions, ClusterClient } from '../cluster-client.js'
import { readJsonBody } from './body.js'
import { RouteGroup, sendJson, type LocalHttpServer } from './local-server.js'
import type { Startable } from '@libp2p/interface'
import type { IncomingMessage, ServerResponse } from 'node:http'

export const MAX_WORK_BODY_BYTES = 16 * 1024 * 1024

export type WorkLine =
  | { type: 'output', channel: string, text: string }
  | { type: 'progress', message: string }
  | { type: 'result', result: unknown }
  | { type: 'error', code: string, message: string }

type WorkCall = (body: Record<string, unknown>, options: CallOptions) => Promise<unknown>

/** POST /clawmatrix/{handoff,send,tool}, served from start to stop. */
export class WorkRoutes implements Startable {
  private readonly routes: RouteGroup

  constructor (http: Pick<LocalHttpServer, 'route'>, private readonly client: ClusterClient) {
    this.routes = new RouteGroup(http)
  }

  start (): void {
    const { client } = this
    const route = (name: string, call: WorkCall): void => {
      this.routes.route('POST', `/clawmatrix/${name}`, async (req, res) => { await serveWork(req, res, call) })
    }
    route('handoff', async (body, options) => client.handoff(text(body, 'target'), text(body, 'task'), body.context, { ...options, timeoutMs: timeout(body) }))
    route('send', async (body, options) => client.send(text(body, 'target'), text(body, 'message'), { ...options, timeoutMs: timeout(body) }))
    route('tool', async (body, options) => {
      const args = body.args ?? {}
      if (typeof args !== 'object' || Array.isArray(args)) throw new HttpRequestError(400, 'args: expected a JSON object')
      return client.tool(text(body, 'node'), text(body, 'tool'), args as Record<string, unknown>, { ...options, timeoutMs: timeout(body) })
    })
  }

  stop (): void {
    this.routes.clear()
  }
}

async function serveWork (req: IncomingMessage, res: ServerResponse, call: WorkCall): Promise<void> {
  const cancel = new AbortController()
  res.once('close', () => { if (!res.writableFinished) cancel.abort(new Error('the HTTP client went away')) })
  const line = (value: WorkLine): void => {
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-cache' })
    res.write(JSON.stringify(value) + '\n')
  }
  try {
    const body = await readJsonBody(req, MAX_WORK_BODY_BYTES)
    const result = await call(body, {
      signal: cancel.signal,
      onOutput: (channel, text) => { line({ type: 'output', channel, text }) },
      onProgress: message => { line({ type: 'progress', message }) }
    })
    line({ type: 'result', result })
    res.end()
  } catch (err: any) {
    if (cancel.signal.aborted) return
    if (res.headersSent) {
      line({ type: 'error', code: errorCode(err), message: err.message })
      res.end()
    } else {
      const { status, body } = httpErrorOf(err)
      sendJson(res, status, body)
    }
  }
}

function text (body: Record<string, unknown>, field: string): string {
  const value = body[field]
  if (typeof value !== 'string' || value === '') throw new HttpRequestError(400, `${field}: expected a non-empty string`)
  return value
}

function timeout (body: Record<string, unknown>): number | undefined {
  const value = body.timeoutMs
  if (value == null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new HttpRequestError(400, 'timeoutMs: expected a positive integer')
  return value
}
