/**
 * The task API over the node's local HTTP endpoint, for the CLI and scripts
 * (docs/tasks.md): submit, list, read, follow (NDJSON), answer, cancel.
 */
import { HttpRequestError, httpErrorOf } from '../services/errors.js'
import { readJsonBody } from '../services/http/body.js'
import { sendJson, type LocalHttpServer } from '../services/http/local-server.js'
import { MAX_TASK_TEXT_BYTES } from './constants.js'
import { isActive, type TaskRecord } from './task.js'
import type { TaskService } from './service.js'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Lines of `GET /clawmatrix/task?id=…&follow=1`. */
export type TaskLine =
  | { type: 'task', task: TaskRecord }
  | { type: 'progress', id: string, message: string, at: number }

export function registerTaskRoutes (http: Pick<LocalHttpServer, 'route'>, tasks: TaskService): void {
  const json = (method: string, path: string, handle: (req: IncomingMessage, url: URL) => Promise<unknown>): void => {
    http.route(method, path, async (req, res, url) => {
      try {
        sendJson(res, 200, await handle(req, url))
      } catch (err) {
        sendError(res, err)
      }
    })
  }
  json('POST', '/clawmatrix/tasks', async req => {
    const body = await readJsonBody(req, 2 * MAX_TASK_TEXT_BYTES)
    const contextId = optionalText(body, 'contextId')
    const target = optionalText(body, 'target')
    if (target == null && contextId == null) throw new HttpRequestError(400, 'target: expected a non-empty string (or a contextId to continue)')
    return tasks.submit(target, text(body, 'task'), { context: body.context, contextId, timeoutMs: timeout(body), session: optionalText(body, 'session') })
  })
  json('GET', '/clawmatrix/tasks', async (_req, url) => ({ tasks: tasks.list(url.searchParams.get('session') ?? undefined) }))
  json('POST', '/clawmatrix/task/message', async req => {
    const body = await readJsonBody(req, 2 * MAX_TASK_TEXT_BYTES)
    return tasks.message(text(body, 'id'), text(body, 'message'))
  })
  json('POST', '/clawmatrix/task/cancel', async req => {
    const body = await readJsonBody(req, 64 * 1024)
    const { record, stopped } = await tasks.cancel(text(body, 'id'))
    return { ...record, stopped }
  })
  http.route('GET', '/clawmatrix/task', async (req, res, url) => {
    try {
      const id = url.searchParams.get('id')
      if (id == null || id === '') throw new HttpRequestError(400, 'id: expected a task id (?id=…)')
      if (url.searchParams.get('refresh') === '1') await tasks.refresh(id).catch(() => {})
      const record = tasks.get(id)
      if (url.searchParams.get('follow') !== '1') {
        sendJson(res, 200, record)
        return
      }
      followTask(req, res, tasks, record)
    } catch (err) {
      sendError(res, err)
    }
  })
}

/** Streams a task as NDJSON: the record, progress as it comes, and the record again once it stopped working. */
function followTask (req: IncomingMessage, res: ServerResponse, tasks: TaskService, record: TaskRecord): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-cache' })
  const line = (value: TaskLine): void => { res.write(JSON.stringify(value) + '\n') }
  line({ type: 'task', task: record })
  if (!isActive(record.state)) {
    res.end()
    return
  }
  const stop = tasks.follow(record.id, event => {
    if (event.type === 'progress') {
      line({ type: 'progress', id: event.id, message: event.message, at: event.at })
    } else if (!isActive(event.task.state)) {
      stop()
      line({ type: 'task', task: event.task })
      res.end()
    }
  })
  req.once('close', stop)
  res.once('close', stop)
}

function sendError (res: ServerResponse, err: any): void {
  if (res.headersSent) {
    res.destroy(err)
    return
  }
  const { status, body } = httpErrorOf(err)
  sendJson(res, status, body)
}

function text (body: Record<string, unknown>, field: string): string {
  const value = body[field]
  if (typeof value !== 'string' || value === '') throw new HttpRequestError(400, `${field}: expected a non-empty string`)
  if (Buffer.byteLength(value) > MAX_TASK_TEXT_BYTES) throw new HttpRequestError(413, `${field}: more than ${MAX_TASK_TEXT_BYTES} bytes`)
  return value
}

function optionalText (body: Record<string, unknown>, field: string): string | undefined {
  return body[field] == null ? undefined : text(body, field)
}

function timeout (body: Record<string, unknown>): number | undefined {
  const value = body.timeoutMs
  if (value == null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new HttpRequestError(400, 'timeoutMs: expected a positive integer')
  return value
}
