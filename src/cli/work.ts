import { readFile } from 'node:fs/promises'
import { escapeControl } from '../node/escape.js'
import { CommandError, WorkCallError } from './errors.js'
import type { WorkLine } from '../services/http/work-routes.js'

export interface WorkEndpoint {
  host: string
  port: number
  json: boolean
}

/** Where the CLI finds the node's proxyToken, when the node has one. */
export const PROXY_TOKEN_ENV = 'CLAWMATRIX_PROXY_TOKEN'

/** Headers for a request to a node's local endpoint: the bearer token from the environment, if set. */
export function endpointHeaders (extra: Record<string, string> = {}): Record<string, string> {
  const token = process.env[PROXY_TOKEN_ENV]
  return token == null || token === '' ? extra : { ...extra, authorization: `Bearer ${token}` }
}

/** What to check when no node answered at the endpoint. */
const NO_ANSWER_HINT = 'is it running, and is --port its proxyPort?'

/** `no clawmatrix node answered at <url> (<why>); <hint>`: the one wording of it. */
export function noNodeAnswered (url: string, err: any, hint = NO_ANSWER_HINT): string {
  return `no clawmatrix node answered at ${url} (${err.cause?.code ?? err.message}); ${hint}`
}

/** GETs a JSON report (status, peers, audit) from a running node's local endpoint. */
export async function getFromNode<T> (url: string, hint?: string): Promise<T> {
  try {
    const res = await fetch(url, { headers: endpointHeaders(), signal: AbortSignal.timeout(10_000) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    return await res.json() as T
  } catch (err: any) {
    throw new CommandError(noNodeAnswered(url, err, hint), { cause: err })
  }
}

/**
 * Posts one call to a running node's local endpoint and follows its
 * NDJSON answer: remote output goes to stdout/stderr as it arrives, the
 * result is returned. Ctrl-C closes the request, which cancels the remote work.
 */
export async function callNode (endpoint: WorkEndpoint, operation: 'handoff' | 'send' | 'tool', body: Record<string, unknown>): Promise<any> {
  const url = `http://${endpoint.host}:${endpoint.port}/clawmatrix/${operation}`
  const cancel = new AbortController()
  const onSignal = (): void => { cancel.abort() }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    let res: Response
    try {
      res = await fetch(url, { method: 'POST', headers: endpointHeaders({ 'content-type': 'application/json' }), body: JSON.stringify(body), signal: cancel.signal })
    } catch (err: any) {
      throw new WorkCallError(noNodeAnswered(url, err))
    }
    if (!res.ok) {
      const error = await res.json().then((b: any) => b?.error, () => undefined)
      throw new WorkCallError(error?.message ?? `HTTP ${res.status} from ${url}`)
    }
    return await followLines(res, endpoint)
  } catch (err: any) {
    if (cancel.signal.aborted) throw new WorkCallError('cancelled; the remote work was stopped', 130)
    throw err
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** The lines of an NDJSON answer (the work and task routes' `follow`), each parsed, as they arrive. */
export async function * ndjsonLines<Line> (res: Response): AsyncGenerator<Line> {
  const decoder = new TextDecoder()
  let pending = ''
  for await (const chunk of res.body!) {
    pending += decoder.decode(chunk, { stream: true })
    let newline: number
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = JSON.parse(pending.slice(0, newline)) as Line
      pending = pending.slice(newline + 1)
      yield line
    }
  }
}

async function followLines (res: Response, endpoint: WorkEndpoint): Promise<unknown> {
  for await (const line of ndjsonLines<WorkLine>(res)) {
    switch (line.type) {
      case 'output':
        if (!endpoint.json) (line.channel === 'stderr' ? process.stderr : process.stdout).write(line.text)
        break
      case 'progress':
        if (!endpoint.json) process.stderr.write(`[progress] ${escapeControl(String(line.message))}\n`)
        break
      case 'error':
        throw new WorkCallError(line.message)
      case 'result':
        return line.result
    }
  }
  throw new WorkCallError('the node closed the answer before the result: the call may or may not have finished')
}

/** Content for `write`: the --content value, else the --from file, else stdin. */
export async function contentOf (content: string | undefined, from: string | undefined): Promise<string> {
  if (content != null) return content
  if (from != null) return readFile(from, 'utf8')
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
