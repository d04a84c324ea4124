/**
 * Every agent in the cluster as an A2A agent on this node's local endpoint
 * (docs/a2a.md): cards under `/.well-known/agent-card.json` and
 * `/a2a/<agentId>/.well-known/agent-card.json`, A2A 1.0 JSON-RPC at
 * `POST /a2a/<agentId>`, streamed by server-sent events. A message becomes a
 * clawmatrix task (src/tasks) that crosses the mesh to whichever node hosts
 * the agent, so a client reaches agents behind NAT with no public URL.
 */
import { readJsonBody } from '../services/http/body.js'
import { sendJson, type LocalHttpServer, type RouteHandler } from '../services/http/local-server.js'
import { formatSseData } from '../services/models/sse.js'
import { checkRequest, rpcError, rpcErrorOf, rpcResult, type JsonRpcId } from '../services/a2a/json-rpc.js'
import { InvalidA2AMessageError, MethodNotFoundError, TaskNotCancelableError } from '../services/a2a/errors.js'
import { checkId, checkMessage, stateFromWire, textOf, type A2AStreamEvent } from '../services/a2a/wire.js'
import { agentCard, clusterAgents, clusterCard, type ClusterAgent } from './agent-card.js'
import { ContextAliases } from './context-aliases.js'
import { a2aTask, progressEvent, stateEvents } from './task-view.js'
import { isTerminal, type TaskEvent, type TaskRecord } from '../tasks/task.js'
import type { ClusterNode } from '../services/cluster/cluster-view.js'
import type { TaskService } from '../tasks/service.js'
import type { Logger, Startable } from '@libp2p/interface'
import type { IncomingMessage, ServerResponse } from 'node:http'

export interface A2AEndpointComponents {
  nodeId: string
  http: Pick<LocalHttpServer, 'route' | 'routePrefix'>
  view: { nodes(): ClusterNode[] }
  tasks: Pick<TaskService, 'submit' | 'get' | 'list' | 'message' | 'cancel' | 'follow' | 'untilSettled'>
  log: Logger
}

export interface A2AEndpointInit {
  /** Largest JSON-RPC request body, in bytes. @default 1 MiB (as OpenClaw's A2A channel) */
  maxRequestBytes?: number
  /** How long a blocking SendMessage waits before answering with the task as it is then. @default 10 minutes */
  blockingWaitMs?: number
}

const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
const DEFAULT_BLOCKING_WAIT_MS = 10 * 60 * 1000
const CARD_SUFFIX = '/.well-known/agent-card.json'
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** A2A 0.3 method names, as older clients and OpenClaw's channel send them, to their 1.0 names. */
const METHOD_ALIASES: Record<string, string> = {
  'message/send': 'SendMessage',
  'message/stream': 'SendStreamingMessage',
  'tasks/get': 'GetTask',
  'tasks/cancel': 'CancelTask',
  'tasks/resubscribe': 'SubscribeToTask',
  'tasks/list': 'ListTasks'
}

class A2AEndpoint implements Startable {
  private readonly maxRequestBytes: number
  private readonly blockingWaitMs: number
  private readonly removeRoutes: Array<() => void> = []
  /** Open event streams, ended when the endpoint stops. */
  private readonly streams = new Set<ServerResponse>()
  private readonly aliases = new ContextAliases()

  constructor (private readonly components: A2AEndpointComponents, init: A2AEndpointInit = {}) {
    this.maxRequestBytes = init.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES
    this.blockingWaitMs = init.blockingWaitMs ?? DEFAULT_BLOCKING_WAIT_MS
  }

  readonly [Symbol.toStringTag] = 'clawmatrix/a2a-endpoint'

  start (): void {
    const { http } = this.components
    const clusterCardRoute: RouteHandler = (req, res) => { sendJson(res, 200, clusterCard(this.components.nodeId, this.agents(), baseUrl(req))) }
    this.removeRoutes.push(
      http.route('GET', '/.well-known/agent-card.json', clusterCardRoute),
      http.route('GET', '/.well-known/agent.json', clusterCardRoute),
      http.route('POST', '/a2a', async (req, res) => { await this.serveRpc(req, res, undefined) }),
      http.routePrefix('GET', '/a2a/', (req, res, url) => { this.serveCard(req, res, url) }),
      http.routePrefix('POST', '/a2a/', async (req, res, url) => { await this.serveRpc(req, res, this.agentOfPath(res, url.pathname)) })
    )
  }

  stop (): void {
    for (const remove of this.removeRoutes.splice(0)) remove()
    for (const res of this.streams) res.end()
    this.streams.clear()
  }

  private agents (): ClusterAgent[] {
    return clusterAgents(this.components.view.nodes())
  }

  private serveCard (req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (!url.pathname.endsWith(CARD_SUFFIX)) {
      sendJson(res, 404, { error: { message: `no route for GET ${url.pathname}; an agent's card is at /a2a/<agentId>${CARD_SUFFIX}` } })
      return
    }
    const id = this.agentOfPath(res, url.pathname.slice(0, -CARD_SUFFIX.length))
    if (id === undefined) return
    const agent = this.agents().find(a => a.id === id)
    if (agent == null) {
      sendJson(res, 404, { error: { message: `unknown agent "${id}": ${this.offers()}` } })
      return
    }
    sendJson(res, 200, agentCard(agent, baseUrl(req)))
  }

  /** The agent id of `/a2a/<agentId>`; answers 404 itself (and returns undefined) for anything else. */
  private agentOfPath (res: ServerResponse, path: string): string | undefined {
    const id = decodeURIComponentSafe(path.slice('/a2a/'.length))
    if (id == null || !AGENT_ID.test(id)) {
      sendJson(res, 404, { error: { message: `no A2A agent at ${JSON.stringify(path.slice(0, 100))}; agents are at /a2a/<agentId>` } })
      return undefined
    }
    return id
  }

  private offers (): string {
    const ids = this.agents().map(a => a.id)
    return ids.length === 0 ? 'the cluster offers no agents yet' : `the cluster offers agents [${ids.join(', ')}]`
  }

  private async serveRpc (req: IncomingMessage, res: ServerResponse, agent: string | undefined): Promise<void> {
    if (res.headersSent) return
    let id: JsonRpcId = null
    try {
      const request = checkRequest(await readJsonBody(req, this.maxRequestBytes))
      id = request.id
      const method = METHOD_ALIASES[request.method] ?? request.method
      const { params } = request
      if (method === 'SendStreamingMessage' || method === 'SubscribeToTask') {
        const record = method === 'SubscribeToTask'
          ? this.components.tasks.get(requiredId(params))
          : await this.send(agent, params, undefined)
        this.stream(res, id, record)
        return
      }
      sendJson(res, 200, rpcResult(id, await this.call(method, agent, params, res)))
    } catch (err: any) {
      this.components.log('A2A request failed: %s', err.message)
      // A body that is not JSON or too large is still answered in JSON-RPC terms.
      const error = err.name === 'HttpRequestError'
        ? { code: err.status === 400 ? -32700 : -32600, message: err.message }
        : rpcErrorOf(err)
      sendJson(res, 200, rpcError(id, error))
    }
  }

  private async call (method: string, agent: string | undefined, params: Record<string, unknown>, res: ServerResponse): Promise<unknown> {
    const { tasks } = this.components
    switch (method) {
      case 'SendMessage': {
        // The client leaving stops the wait, not the task. On the response, not the (kept-alive, reused) socket.
        const gone = new AbortController()
        const onClose = (): void => { if (!res.writableFinished) gone.abort() }
        res.once('close', onClose)
        try {
          const record = await this.send(agent, params, gone.signal)
          return { task: a2aTask(this.asClient(record), historyLength(params.configuration)) }
        } finally {
          res.off('close', onClose)
        }
      }
      case 'GetTask': return a2aTask(this.asClient(tasks.get(requiredId(params))), historyLength(params))
      case 'CancelTask': {
        const { record, stopped } = await tasks.cancel(requiredId(params))
        if (!stopped && record.state !== 'canceled') {
          throw new TaskNotCancelableError(`task ${record.id} could not be canceled: it is ${record.state}${record.note == null ? '' : ` (${record.note})`}`)
        }
        return a2aTask(this.asClient(record))
      }
      case 'ListTasks': {
        const given = checkId(params.contextId, 'contextId')
        const contextId = given == null ? undefined : this.aliases.taskContext(given) ?? given
        const state = params.status == null || params.status === '' ? undefined : stateFromWire(params.status)
        const all = tasks.list().filter(r => (contextId == null || r.contextId === contextId) && (state == null || r.state === state))
        const pageSize = typeof params.pageSize === 'number' && params.pageSize > 0 ? Math.min(params.pageSize, 100) : 50
        const page = all.slice(0, pageSize)
        return { tasks: page.map(r => a2aTask(this.asClient(r), 0)), nextPageToken: '', pageSize: page.length, totalSize: all.length }
      }
      default: throw new MethodNotFoundError(`method ${JSON.stringify(method)} is not one clawmatrix serves: SendMessage, SendStreamingMessage, GetTask, CancelTask, SubscribeToTask, ListTasks`)
    }
  }

  /**
   * Starts a task for a message, or answers the task it names (one waiting
   * for input). A blocking send waits until the task settles; the task does
   * not depend on the request: a client that leaves can still GetTask it.
   */
  private async send (agent: string | undefined, params: Record<string, unknown>, gone: AbortSignal | undefined): Promise<TaskRecord> {
    const { tasks } = this.components
    const message = checkMessage(params.message)
    const text = textOf(message)
    if (text.trim() === '') throw new InvalidA2AMessageError('message.parts: no text or data to hand to the agent')
    let record: TaskRecord
    if (message.taskId != null) {
      const earlier = tasks.get(message.taskId)
      if (isTerminal(earlier.state)) {
        throw new InvalidA2AMessageError(`task ${earlier.id} is ${earlier.state}; send a new message with its contextId ${earlier.contextId} to continue the conversation`)
      }
      record = await tasks.message(earlier.id, text)
    } else {
      const target = agent ?? agentOfMetadata(params, message.metadata) ?? this.onlyAgent()
      const given = message.contextId
      // A contextId of the client's own choosing starts a conversation here and continues it after.
      const contextId = given == null || tasks.list().some(r => r.contextId === given) ? given : this.aliases.taskContext(given)
      record = await tasks.submit(target, text, { contextId })
      if (given != null && contextId == null) this.aliases.remember(given, record.contextId)
    }
    const configuration = params.configuration as Record<string, unknown> | undefined
    if (gone == null || configuration?.returnImmediately === true) return record
    const waited = AbortSignal.any([gone, AbortSignal.timeout(this.blockingWaitMs)])
    try {
      return await tasks.untilSettled(record.id, waited)
    } catch (err) {
      if (!waited.aborted) throw err
      return tasks.get(record.id)
    }
  }

  /** The task as the client knows it: under the contextId the client chose, if it chose one. */
  private asClient (record: TaskRecord): TaskRecord {
    const contextId = this.aliases.clientContext(record.contextId)
    return contextId === record.contextId ? record : { ...record, contextId }
  }

  private onlyAgent (): string {
    const agents = this.agents()
    if (agents.length === 1) return agents[0]!.id
    throw new InvalidA2AMessageError(`name the agent: POST /a2a/<agentId>, or metadata.agentId here; ${this.offers()}`)
  }

  /** Streams a task's events until it settles (ends or asks for input), then ends the response. */
  private stream (res: ServerResponse, id: JsonRpcId, record: TaskRecord): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
    this.streams.add(res)
    const send = (event: A2AStreamEvent): void => { if (!res.writableEnded) res.write(formatSseData(rpcResult(id, event))) }
    const settled = (state: TaskRecord['state']): boolean => isTerminal(state) || state === 'input-required'
    let unfollow = (): void => {}
    const end = (): void => {
      unfollow()
      this.streams.delete(res)
      if (!res.writableEnded) res.end()
    }
    const seen = this.asClient(record)
    send({ task: a2aTask(seen) })
    unfollow = this.components.tasks.follow(record.id, (event: TaskEvent) => {
      if (event.type === 'progress') {
        send(progressEvent(seen, event.message, event.at))
        return
      }
      for (const update of stateEvents(this.asClient(event.task))) send(update)
      if (settled(event.task.state)) end()
    })
    res.once('close', end)
    // It may have settled between the answer above and the follow.
    const now = this.components.tasks.get(record.id)
    if (settled(now.state)) {
      if (now.updatedAt !== record.updatedAt || now.state !== record.state) for (const update of stateEvents(this.asClient(now))) send(update)
      end()
    }
  }
}

function requiredId (params: Record<string, unknown>): string {
  const id = checkId(params.id, 'id')
  if (id == null) throw new InvalidA2AMessageError('id: expected the task id')
  return id
}

function historyLength (from: unknown): number | undefined {
  const value = (from as Record<string, unknown> | undefined)?.historyLength
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined
}

function agentOfMetadata (params: Record<string, unknown>, messageMetadata: Record<string, unknown> | undefined): string | undefined {
  const value = (params.metadata as Record<string, unknown> | undefined)?.agentId ?? messageMetadata?.agentId
  if (value == null) return undefined
  if (typeof value !== 'string' || !AGENT_ID.test(value)) throw new InvalidA2AMessageError('metadata.agentId: expected an agent id')
  return value
}

function decodeURIComponentSafe (text: string): string | undefined {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

/** The URL this request reached, for the cards' endpoints: a client behind a port forward gets its own. */
function baseUrl (req: IncomingMessage): string {
  const host = req.headers.host
  const valid = host != null && /^[A-Za-z0-9.\-:[\]]{1,300}$/.test(host)
  return `http://${valid ? host : `${req.socket.localAddress}:${req.socket.localPort}`}`
}

/** The A2A endpoint of a node: start() adds its routes to the node's local HTTP server. */
export function a2aEndpoint (components: A2AEndpointComponents, init?: A2AEndpointInit): Startable {
  return new A2AEndpoint(components, init)
}
