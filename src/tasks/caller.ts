import { randomUUID } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { firstAccepting } from '../services/wire/failover.js'
import { type OutboundExchange } from '../services/wire/outbound.js'
import { REATTACH_INTERVAL_MS } from './constants.js'
import { isActive, isTerminal, TaskFollowers, type TaskEvent, type TaskRecord } from './task.js'
import type { TaskProtocol, TaskSnapshot } from './protocol.js'
import type { TaskStore } from './store.js'
import type { ClusterClient } from '../services/cluster-client.js'
import type { ClusterView } from '../services/cluster/cluster-view.js'
import type { Card } from '../services/cluster/card.js'
import type { Logger, PeerId } from '@libp2p/interface'
import { UnknownTaskError } from './errors.js'

export interface SubmitOptions {
  /** Background for the agent (any JSON). */
  context?: unknown
  /** Continue this conversation: the task goes to the same agent on the same node. */
  contextId?: string
  /** How long the executor may run the agent (default 1 hour there). */
  timeoutMs?: number
  /** The calling session; a task that ends is delivered there (see TaskDelivery). */
  session?: string
  /** Deliver settled states into `session` (default true); false when the caller waits for the outcome itself. */
  announce?: boolean
  /** Aborting gives up submitting; once accepted, the task no longer depends on it. */
  signal?: AbortSignal
}

/**
 * Hands a settled task (ended, or asking for input) to the session that
 * started it. Resolving marks it delivered; a rejection is retried when the
 * node starts again.
 */
export type TaskDelivery = (record: TaskRecord) => Promise<void>

export interface TaskCallerInit {
  nodeId: string
  peerId: string
  store: TaskStore
  protocol: TaskProtocol
  client: ClusterClient
  view: ClusterView
  /** libp2p's events: a new connection to an executor is a moment to reattach. */
  connections: Pick<EventTarget, 'addEventListener' | 'removeEventListener'>
  log: Logger
  /** Retry reattaching to away executors this often besides on their return. @default 30 s (REATTACH_INTERVAL_MS) */
  reattachIntervalMs?: number
  deliver?: TaskDelivery
}

/**
 * The calling side: submits tasks, keeps its own record of each, follows
 * every active one on its executor and, when a follow breaks, attaches
 * again as soon as the executor is back. A task whose executor cannot be
 * reached is marked `failed` (provisionally: the executor's own account
 * replaces it if it returns). Settled tasks go to `deliver`.
 */
export class TaskCaller {
  private readonly watching = new Map<string, AbortController>()
  private readonly listeners = new TaskFollowers()
  private stopped = new AbortController()
  private retryTimer?: ReturnType<typeof setInterval>

  constructor (private readonly init: TaskCallerInit) {}

  start (): void {
    this.stopped = new AbortController()
    this.init.view.addEventListener('node:joined', this.onJoined)
    this.init.connections.addEventListener('peer:connect', this.onConnect)
    this.retryTimer = setInterval(() => { this.reattachAll() }, this.init.reattachIntervalMs ?? REATTACH_INTERVAL_MS)
    this.retryTimer.unref()
    for (const record of this.init.store.all()) {
      // Right after a start the executor is usually not connected yet: no failure for that.
      if (this.needsExecutor(record)) void this.reattach(record, undefined, false)
      else void this.deliver(record)
    }
  }

  async stop (): Promise<void> {
    this.init.view.removeEventListener('node:joined', this.onJoined)
    this.init.connections.removeEventListener('peer:connect', this.onConnect)
    clearInterval(this.retryTimer)
    this.stopped.abort(new Error(`${this.init.nodeId} is stopping`))
    for (const watch of this.watching.values()) watch.abort()
    this.watching.clear()
    await this.init.store.flush()
  }

  get (id: string): TaskRecord {
    const record = this.init.store.get(id)
    if (record == null) throw new UnknownTaskError(id, this.init.nodeId)
    return record
  }

  /** This node's tasks, newest first; with `session`, only those that session started. */
  list (session?: string): TaskRecord[] {
    return this.init.store.all().filter(r => session == null || r.owner.session === session).reverse()
  }

  async submit (target: string | undefined, task: string, options: SubmitOptions = {}): Promise<TaskRecord> {
    const signal = AbortSignal.any([options.signal ?? new AbortController().signal, this.stopped.signal])
    const id = randomUUID()
    let groups: Array<[string, PeerId[]]>
    if (options.contextId != null) {
      const earlier = this.init.store.all().find(r => r.contextId === options.contextId)
      if (earlier == null) throw new UnknownTaskError(`with contextId ${options.contextId}`, this.init.nodeId)
      // A conversation stays with its agent on its node: no other candidate.
      groups = [[earlier.agent, [peerIdFromString(earlier.peerId)]]]
    } else {
      if (target == null) throw new Error('a task needs a target (agent id, node id or tags:...) or a contextId')
      groups = this.init.client.agentTargets(target)
    }
    const failures: unknown[] = []
    for (const [agent, peers] of groups) {
      const frame = { type: 'task-submit', id, agent, task, context: options.context, contextId: options.contextId, timeoutMs: options.timeoutMs, session: options.session, from: this.init.nodeId, follow: true }
      try {
        const { exchange, first } = await firstAccepting(peers, async (peer, last) => this.init.protocol.open(peer, frame, signal, last), signal)
        const now = Date.now()
        const record: TaskRecord = {
          ...first.task,
          role: 'caller',
          node: this.init.client.nodeIdOf(exchange.peer),
          peerId: exchange.peer.toString(),
          owner: { nodeId: this.init.nodeId, peerId: this.init.peerId, session: options.session, ...(options.announce === false ? { announce: false } : {}) },
          context: options.context,
          timeoutMs: options.timeoutMs,
          createdAt: now,
          updatedAt: now
        }
        await this.init.store.save(record)
        this.listeners.emit({ type: 'state', id, task: record })
        if (first.following === true) this.watch(record, exchange)
        else await this.settled(record)
        return record
      } catch (err) {
        if (groups.length === 1) throw err
        failures.push(err)
      }
    }
    throw failures.at(-1)
  }

  /**
   * Turns delivery into the owner's session on or off: on once a caller that
   * waited stops waiting (the state it saw counts as delivered; later ones go
   * to the session).
   */
  async setAnnounce (id: string, announce: boolean): Promise<void> {
    const record = this.get(id)
    record.owner.announce = announce ? undefined : false
    if (announce) record.delivered = deliveryKey(record)
    await this.init.store.save(record)
  }

  /** Reads the task from its executor now (a record here is updated). */
  async refresh (id: string, signal?: AbortSignal): Promise<TaskRecord> {
    const record = this.get(id)
    const { exchange, first } = await this.init.protocol.open(peerIdFromString(record.peerId), { type: 'task-get', id }, this.signal(signal))
    await exchange.close().catch(() => {})
    await this.apply(record, first.task)
    return record
  }

  /**
   * Answers a task waiting in `input-required` (it resumes), or continues a
   * finished one's conversation with a new task (same contextId).
   */
  async message (id: string, message: string, signal?: AbortSignal): Promise<TaskRecord> {
    const record = this.get(id)
    if (isTerminal(record.state)) return this.submit(undefined, message, { contextId: record.contextId, session: record.owner.session, signal })
    const { exchange, first } = await this.init.protocol.open(peerIdFromString(record.peerId), { type: 'task-message', id, message, follow: true }, this.signal(signal))
    await this.apply(record, first.task)
    if (first.following === true) this.watch(record, exchange)
    return record
  }

  /** Cancels on the executor; `stopped` says whether the run there was really stopped. */
  async cancel (id: string, signal?: AbortSignal): Promise<{ record: TaskRecord, stopped: boolean }> {
    const record = this.get(id)
    if (isTerminal(record.state) && record.provisional !== true) return { record, stopped: false }
    const { exchange, first } = await this.init.protocol.open(peerIdFromString(record.peerId), { type: 'task-cancel', id }, this.signal(signal))
    await exchange.close().catch(() => {})
    await this.apply(record, first.task)
    return { record, stopped: first.stopped === true }
  }

  /** Follows a task's events here; the returned function stops following. */
  follow (id: string, listener: (event: TaskEvent) => void): () => void {
    return this.listeners.follow(id, listener)
  }

  /** Resolves once the task is no longer submitted or working (ended, or asking for input). */
  async untilSettled (id: string, signal?: AbortSignal): Promise<TaskRecord> {
    const record = this.get(id)
    if (!isActive(record.state)) return record
    return new Promise((resolve, reject) => {
      const onAbort = (): void => { stop(); reject(signal!.reason) }
      const stop = this.follow(id, event => {
        if (event.type === 'state' && !isActive(event.task.state)) {
          stop()
          signal?.removeEventListener('abort', onAbort)
          resolve(event.task)
        }
      })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  private signal (signal?: AbortSignal): AbortSignal {
    return signal == null ? this.stopped.signal : AbortSignal.any([signal, this.stopped.signal])
  }

  private needsExecutor (record: TaskRecord): boolean {
    return isActive(record.state) || record.provisional === true
  }

  /** Follows an accepted exchange in the background until the task stops working. */
  private watch (record: TaskRecord, exchange: OutboundExchange): void {
    this.watching.get(record.id)?.abort()
    const watch = new AbortController()
    this.watching.set(record.id, watch)
    const signal = AbortSignal.any([watch.signal, this.stopped.signal])
    void this.init.protocol.follow(exchange, {
      onProgress: (message, at) => {
        record.progress.push({ at, message })
        if (record.progress.length > 50) record.progress.shift()
        this.listeners.emit({ type: 'progress', id: record.id, message, at })
      },
      onState: task => { void this.apply(record, task) }
    }, signal).then(async final => {
      if (this.watching.get(record.id) === watch) this.watching.delete(record.id)
      await this.apply(record, final)
    }, async (err: Error) => {
      if (this.watching.get(record.id) === watch) this.watching.delete(record.id)
      if (signal.aborted) return
      this.init.log('following task %s on %s broke: %s', record.id, record.node, err.message)
      await this.reattach(record, err)
    })
  }

  /** Asks the executor for the task again and follows it; if it cannot be reached, an active task is failed provisionally. */
  private async reattach (record: TaskRecord, cause?: Error, failIfAway = true): Promise<void> {
    if (this.watching.has(record.id) || this.stopped.signal.aborted) return
    const placeholder = new AbortController()
    this.watching.set(record.id, placeholder)
    try {
      const { exchange, first } = await this.init.protocol.open(peerIdFromString(record.peerId), { type: 'task-get', id: record.id, follow: true }, this.stopped.signal)
      this.watching.delete(record.id)
      await this.apply(record, first.task)
      if (first.following === true) this.watch(record, exchange)
    } catch (err: any) {
      if (this.watching.get(record.id) === placeholder) this.watching.delete(record.id)
      if (this.stopped.signal.aborted || !isActive(record.state) || !failIfAway) return
      const why = cause?.message ?? err.message
      await this.change(record, {
        state: 'failed',
        provisional: true,
        error: { code: 'executor-lost', message: `${record.node} went away while the task was ${record.state} (${why}); if it comes back, its own account of the task replaces this` }
      })
    }
  }

  /** Takes the executor's account of a task. */
  private async apply (record: TaskRecord, task: TaskSnapshot): Promise<void> {
    const { id, contextId, state, agent, turns, progress, result, question, error, note } = task
    await this.change(record, { id, contextId, state, agent, turns, progress, result, question, error, note, provisional: undefined })
  }

  private async change (record: TaskRecord, fields: Partial<TaskRecord>): Promise<void> {
    const before = record.state
    Object.assign(record, fields)
    record.updatedAt = Date.now()
    await this.init.store.save(record)
    this.listeners.emit({ type: 'state', id: record.id, task: record })
    if (before !== record.state || fields.provisional === true) await this.settled(record)
  }

  private async settled (record: TaskRecord): Promise<void> {
    if (!isActive(record.state)) await this.deliver(record)
  }

  private async deliver (record: TaskRecord): Promise<void> {
    const { deliver } = this.init
    const key = deliveryKey(record)
    if (deliver == null || record.owner.session == null || record.owner.announce === false || record.delivered === key || isActive(record.state)) return
    try {
      await deliver(record)
      record.delivered = key
      await this.init.store.save(record)
    } catch (err: any) {
      this.init.log.error('delivering task %s to %s failed: %s', record.id, record.owner.session, err.message)
    }
  }

  /** Reattaches to the tasks of `peerId` (every away executor when absent) that still need it. */
  private reattachAll (peerId?: string): void {
    for (const record of this.init.store.all()) {
      if ((peerId == null || record.peerId === peerId) && this.needsExecutor(record)) void this.reattach(record)
    }
  }

  private readonly onJoined = (event: CustomEvent<Card>): void => {
    this.reattachAll(event.detail.peerId)
  }

  private readonly onConnect = (event: Event): void => {
    this.reattachAll(String((event as CustomEvent<unknown>).detail))
  }
}

/** Names a settled state of a task once: a resumed task's next question or answer is a new one. */
function deliveryKey (record: TaskRecord): string {
  return `${record.state}@${record.turns.length}${record.provisional === true ? ':provisional' : ''}`
}
