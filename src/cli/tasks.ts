/**
 * `clawmatrix handoff --no-wait`, `clawmatrix task <id>` and `clawmatrix tasks`:
 * the task API of a running node (docs/tasks.md) from a shell.
 */
import { escapeControl } from '../node/escape.js'
import { endpointHeaders, ndjsonLines, noNodeAnswered, type WorkEndpoint } from './work.js'
import { WorkCallError } from './errors.js'
import type { TaskRecord } from '../tasks/task.js'
import type { TaskLine } from '../tasks/http-routes.js'

async function request (endpoint: WorkEndpoint, method: string, path: string, body?: unknown): Promise<Response> {
  const url = `http://${endpoint.host}:${endpoint.port}${path}`
  let res: Response
  try {
    res = await fetch(url, {
      method,
      headers: endpointHeaders(body == null ? {} : { 'content-type': 'application/json' }),
      body: body == null ? undefined : JSON.stringify(body)
    })
  } catch (err: any) {
    throw new WorkCallError(noNodeAnswered(url, err))
  }
  if (!res.ok) {
    const error = await res.json().then((b: any) => b?.error, () => undefined)
    throw new WorkCallError(error?.message ?? `HTTP ${res.status} from ${url}`)
  }
  return res
}

async function json<T> (endpoint: WorkEndpoint, method: string, path: string, body?: unknown): Promise<T> {
  return await (await request(endpoint, method, path, body)).json() as T
}

function print (text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n')
}

/** `handoff --no-wait`: submits and prints the task id at once; with `wait`, follows it to its end instead. */
export async function submitTask (endpoint: WorkEndpoint, body: { target?: string, task: string, context?: string, contextId?: string, timeoutMs?: number }, wait = false): Promise<void> {
  const record = await json<TaskRecord>(endpoint, 'POST', '/clawmatrix/tasks', body)
  if (wait) {
    await follow(endpoint, record.id)
    return
  }
  print(endpoint.json
    ? JSON.stringify(record, null, 2)
    : `task ${record.id} ${record.state} on ${record.agent}@${record.node} (contextId ${record.contextId})\nfollow it: clawmatrix task ${record.id} --follow`)
}

export interface TaskCommandOptions {
  follow?: boolean
  cancel?: boolean
  message?: string
}

/** `task <id>`: shows, follows, answers or cancels one task. */
export async function taskCommand (endpoint: WorkEndpoint, id: string, options: TaskCommandOptions): Promise<void> {
  if (options.cancel === true) {
    const record = await json<TaskRecord & { stopped: boolean }>(endpoint, 'POST', '/clawmatrix/task/cancel', { id })
    print(endpoint.json ? JSON.stringify(record, null, 2) : `task ${id} ${record.state}${record.note == null ? '' : `: ${record.note}`}`)
    return
  }
  let current: TaskRecord
  if (options.message != null) {
    current = await json<TaskRecord>(endpoint, 'POST', '/clawmatrix/task/message', { id, message: options.message })
    if (current.id !== id && !endpoint.json) process.stderr.write(`task ${id} had ended: the message went on in its conversation as task ${current.id}\n`)
    if (options.follow !== true) {
      print(endpoint.json ? JSON.stringify(current, null, 2) : formatTask(current))
      return
    }
    id = current.id
  }
  if (options.follow !== true) {
    current = await json<TaskRecord>(endpoint, 'GET', `/clawmatrix/task?id=${encodeURIComponent(id)}&refresh=1`)
    print(endpoint.json ? JSON.stringify(current, null, 2) : formatTask(current))
    exitFor(current)
    return
  }
  await follow(endpoint, id)
}

/** Prints progress as it arrives and the task once it stopped working. */
async function follow (endpoint: WorkEndpoint, id: string): Promise<void> {
  const res = await request(endpoint, 'GET', `/clawmatrix/task?id=${encodeURIComponent(id)}&follow=1`)
  let last: TaskRecord | undefined
  let first = true
  for await (const line of ndjsonLines<TaskLine>(res)) {
    if (endpoint.json) {
      print(JSON.stringify(line))
    } else if (line.type === 'progress') {
      print(`[progress] ${escapeControl(line.message)}`)
    } else if (first) {
      print(`task ${line.task.id} ${line.task.state} on ${line.task.agent}@${line.task.node}`)
      for (const p of line.task.progress) print(`[progress] ${escapeControl(p.message)}`)
    }
    if (line.type === 'task') {
      last = line.task
      first = false
    }
  }
  if (last == null) throw new WorkCallError(`the node closed the follow of task ${id} before saying anything`)
  if (!endpoint.json) print(formatOutcome(last))
  exitFor(last)
}

/** `tasks`: the tasks this node started, newest first. */
export async function tasksCommand (endpoint: WorkEndpoint): Promise<void> {
  const { tasks } = await json<{ tasks: TaskRecord[] }>(endpoint, 'GET', '/clawmatrix/tasks')
  if (endpoint.json) {
    print(JSON.stringify(tasks, null, 2))
    return
  }
  if (tasks.length === 0) {
    print('no tasks started from this node')
    return
  }
  for (const t of tasks) {
    print(`${t.id}  ${t.state.padEnd(14)}  ${`${t.agent}@${t.node}`.padEnd(24)}  ${new Date(t.createdAt).toISOString()}  ${oneLine(t.task, 60)}`)
  }
}

export function formatTask (t: TaskRecord): string {
  const lines = [
    `task ${t.id}: ${t.state}${t.provisional === true ? ' (provisional)' : ''}`,
    `  agent ${t.agent} on ${t.node}; contextId ${t.contextId}; started ${new Date(t.createdAt).toISOString()}`,
    `  task: ${oneLine(t.task, 200)}`
  ]
  for (const p of t.progress.slice(-5)) lines.push(`  [progress] ${oneLine(p.message, 200)}`)
  lines.push(formatOutcome(t))
  return lines.join('\n')
}

function formatOutcome (t: TaskRecord): string {
  switch (t.state) {
    case 'completed': return t.result ?? ''
    case 'input-required': return `task ${t.id} asks: ${t.question ?? ''}\nanswer: clawmatrix task ${t.id} --message '<answer>'`
    case 'failed': return `task ${t.id} failed: ${t.error?.message ?? 'no reason given'}`
    case 'canceled': return `task ${t.id} canceled${t.note == null ? '' : `: ${t.note}`}`
    default: return `task ${t.id} is ${t.state}`
  }
}

function exitFor (t: TaskRecord): void {
  if (t.state === 'failed' || t.state === 'rejected') process.exitCode = 1
  else if (t.state === 'canceled') process.exitCode = 130
}

function oneLine (text: string, max: number): string {
  const flat = escapeControl(text.replace(/\s+/g, ' ').trim())
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}
