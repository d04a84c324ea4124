import { type AgentRunner } from '../services/agents/runner.js'
import { AgentRunError } from '../services/errors.js'
import * as c from './constants.js'
import { isActive, isTerminal, TaskFollowers, type TaskEvent, type TaskOwner, type TaskRecord, type Turn } from './task.js'
import type { TaskStore } from './store.js'
import type { Logger } from '@libp2p/interface'
import { TaskRefusedError } from './errors.js'

export interface TaskExecutorInit {
  nodeId: string
  peerId: string
  runner: AgentRunner
  store: TaskStore
  log: Logger
  maxConcurrentTasks?: number
  defaultTimeoutMs?: number
}

export interface SubmitRequest {
  id: string
  agent: string
  task: string
  context?: unknown
  contextId?: string
  timeoutMs?: number
}

interface Running {
  controller: AbortController
  /** The agent was started (a run not yet started can always be stopped). */
  started: boolean
}

/**
 * The executing side: runs tasks for other nodes with the node's agent
 * runner, one record each in the store, and tells followers what happens.
 * Runs are not tied to any stream: a caller that goes away finds its task
 * again by id. Only the node that submitted a task may read, answer or
 * cancel it.
 */
export class TaskExecutor {
  private readonly running = new Map<string, Running>()
  private readonly followers = new TaskFollowers()
  private stopping = false

  constructor (private readonly init: TaskExecutorInit) {}

  /** Loads the records; tasks that were running when the node went down are failed, saying so. */
  async start (): Promise<void> {
    this.stopping = false
    for (const record of this.init.store.all()) {
      if (!isActive(record.state)) continue
      await this.settle(record, 'failed', {
        error: { code: 'executor-restarted', message: `${this.init.nodeId} restarted while the task was ${record.state}; the run was lost` }
      })
    }
  }

  /** Stops every run; their tasks end `failed` (the node is stopping). */
  async stop (): Promise<void> {
    this.stopping = true
    for (const run of this.running.values()) run.controller.abort(new Error(`${this.init.nodeId} is stopping`))
    await Promise.all([...this.running.keys()].map(async id => this.until(id)))
    await this.init.store.flush()
  }

  /**
   * Accepts a task, or attaches to the one with this id. A new task is
   * `submitted` (stored, queued for its agent); its agent starts once
   * `startAfter` settles (the protocol's answer is on its way), and the
   * task is `working` from then on.
   */
  async submit (request: SubmitRequest, owner: TaskOwner, startAfter?: Promise<unknown>): Promise<{ record: TaskRecord, attached: boolean }> {
    const known = this.init.store.get(request.id)
    if (known != null) {
      this.checkOwner(known, owner.peerId)
      if (known.agent !== request.agent || known.task !== request.task) throw new TaskRefusedError('id-conflict', `id ${request.id} is already used on ${this.init.nodeId} by a different task`)
      return { record: known, attached: true }
    }
    if (this.stopping) throw new TaskRefusedError('shutting-down', `${this.init.nodeId} is shutting down`)
    if (!(await this.init.runner.has(request.agent))) throw new TaskRefusedError('no-such-agent', `no agent "${request.agent}" on ${this.init.nodeId}`)
    let contextId = request.id
    if (request.contextId != null) {
      const earlier = this.conversation(request.contextId)
      if (earlier.length === 0) throw new TaskRefusedError('unknown-context', `no conversation ${request.contextId} on ${this.init.nodeId} (never started here, or pruned)`)
      const first = earlier[0]!
      if (first.owner.peerId !== owner.peerId) throw new TaskRefusedError('not-owner', `conversation ${request.contextId} on ${this.init.nodeId} belongs to another node`)
      if (first.agent !== request.agent) throw new TaskRefusedError('context-agent', `conversation ${request.contextId} is with agent "${first.agent}", not "${request.agent}"`)
      if (earlier.some(r => !isTerminal(r.state))) throw new TaskRefusedError('context-busy', `conversation ${request.contextId} has a task still ${earlier.find(r => !isTerminal(r.state))!.state} (${earlier.find(r => !isTerminal(r.state))!.id}); answer or cancel it first`)
      contextId = request.contextId
    }
    this.checkCapacity()
    const now = Date.now()
    const record: TaskRecord = {
      id: request.id,
      contextId,
      role: 'executor',
      state: 'submitted',
      agent: request.agent,
      node: this.init.nodeId,
      peerId: this.init.peerId,
      owner,
      task: request.task,
      context: request.context,
      turns: [],
      progress: [],
      timeoutMs: request.timeoutMs,
      createdAt: now,
      updatedAt: now
    }
    await this.init.store.save(record)
    this.run(record, false, startAfter)
    return { record, attached: false }
  }

  get (id: string, peerId: string): TaskRecord {
    const record = this.init.store.get(id)
    if (record == null) throw new TaskRefusedError('unknown-task', `no task ${id} on ${this.init.nodeId} (never started here, or pruned)`)
    this.checkOwner(record, peerId)
    return record
  }

  /** The caller's answer to `input-required`: the task resumes with it (once `startAfter` settles, as in submit). */
  async answer (id: string, message: string, peerId: string, startAfter?: Promise<unknown>): Promise<TaskRecord> {
    const record = this.get(id, peerId)
    if (record.state !== 'input-required') {
      throw new TaskRefusedError('not-input-required', `task ${id} on ${this.init.nodeId} is ${record.state}, not waiting for input${isTerminal(record.state) ? '; start a new task with its contextId to continue the conversation' : ''}`)
    }
    if (this.stopping) throw new TaskRefusedError('shutting-down', `${this.init.nodeId} is shutting down`)
    this.checkCapacity()
    record.turns.push({ role: 'user', text: message })
    record.question = undefined
    this.run(record, true, startAfter)
    return record
  }

  /**
   * Cancels a task: a run the runner can stop is stopped (a command agent's
   * process group is killed); otherwise the record says the run goes on and
   * its outcome will be discarded.
   */
  async cancel (id: string, peerId: string): Promise<{ record: TaskRecord, stopped: boolean }> {
    const record = this.get(id, peerId)
    if (isTerminal(record.state)) return { record, stopped: false }
    const run = this.running.get(id)
    const stoppable = run?.started !== true || (await this.init.runner.stopsOnCancel?.(record.agent) ?? true)
    if (run == null || stoppable) {
      run?.controller.abort(new Error('cancelled by the caller'))
      if (run != null) await this.until(id)
      if (!isTerminal(record.state)) await this.settle(record, 'canceled', { note: run == null ? 'nothing was running (the task waited for input)' : `the run on ${this.init.nodeId} was stopped` })
      return { record, stopped: run != null }
    }
    // The host cannot stop this run: release the task now, let the run finish unseen.
    const note = `${this.init.nodeId} cannot stop a running ${record.agent} turn (the host offers no abort), so that run continues there and its answer will be discarded`
    run.controller.abort(new Error('cancelled by the caller'))
    await this.settle(record, 'canceled', { note })
    return { record, stopped: false }
  }

  /** Follows a task's events; the returned function stops following. */
  follow (id: string, listener: (event: TaskEvent) => void): () => void {
    return this.followers.follow(id, listener)
  }

  /** Tasks running here now. */
  get active (): number {
    return this.running.size
  }

  /** Every task of a conversation here, oldest first. */
  private conversation (contextId: string): TaskRecord[] {
    return this.init.store.all().filter(r => r.contextId === contextId)
  }

  private checkOwner (record: TaskRecord, peerId: string): void {
    if (record.owner.peerId !== peerId) throw new TaskRefusedError('not-owner', `task ${record.id} on ${this.init.nodeId} belongs to another node`)
  }

  private checkCapacity (): void {
    const limit = this.init.maxConcurrentTasks ?? c.MAX_CONCURRENT_TASKS
    if (this.running.size >= limit) throw new TaskRefusedError('busy', `${this.init.nodeId} is already running ${this.running.size} tasks (its limit)`)
  }

  private async until (id: string): Promise<void> {
    await new Promise<void>(resolve => {
      if (!this.running.has(id)) { resolve(); return }
      const stop = this.follow(id, () => { if (!this.running.has(id)) { stop(); resolve() } })
    })
  }

  /** Runs the agent for a new or resumed task, in the background, once `startAfter` settled. */
  private run (record: TaskRecord, resumed: boolean, startAfter: Promise<unknown> = Promise.resolve()): void {
    const running = { controller: new AbortController(), started: false }
    this.running.set(record.id, running)
    // Queued for its agent from now on (a resumed task left input-required), so whoever answers about it says so.
    record.state = 'submitted'
    record.updatedAt = Date.now()
    void this.execute(record, resumed, running, startAfter).finally(() => {
      this.running.delete(record.id)
      this.followers.emit({ type: 'state', id: record.id, task: record })
    })
  }

  private async execute (record: TaskRecord, resumed: boolean, running: Running, startAfter: Promise<unknown>): Promise<void> {
    const cancel = running.controller.signal
    const timeoutMs = Math.min(record.timeoutMs ?? this.init.defaultTimeoutMs ?? c.TASK_TIMEOUT_MS, 24 * 60 * 60 * 1000)
    const deadline = AbortSignal.timeout(timeoutMs)
    const signal = AbortSignal.any([cancel, deadline])
    try {
      // a task cancelled (or the node stopping) before that never starts
      await new Promise<void>(resolve => {
        startAfter.then(() => { resolve() }, () => { resolve() })
        signal.addEventListener('abort', () => { resolve() }, { once: true })
      })
      signal.throwIfAborted()
      running.started = true
      await this.update(record, 'working')
      this.init.log('running task %s on agent %s%s', record.id, record.agent, resumed ? ' (resumed with an answer)' : '')
      const outcome = await this.init.runner.run(record.agent, record.task, record.context, {
        signal,
        id: record.id,
        contextId: record.contextId,
        history: this.history(record),
        resumed,
        // The owner's name was resolved from its authenticated peer id (./protocol.ts); the session is its own word.
        from: { peerId: record.owner.peerId, nodeId: record.owner.nodeId, label: record.owner.session },
        onProgress: message => { this.progress(record, message) }
      })
      signal.throwIfAborted()
      if (isTerminal(record.state)) return
      if (outcome.inputRequired === true) {
        record.turns.push({ role: 'agent', text: outcome.text })
        await this.settle(record, 'input-required', { question: outcome.text })
      } else {
        await this.settle(record, 'completed', { result: outcome.text })
      }
    } catch (err: any) {
      if (isTerminal(record.state)) return
      if (deadline.aborted) {
        await this.settle(record, 'failed', { error: { code: 'timeout', message: `agent "${record.agent}" did not finish within ${timeoutMs} ms on ${this.init.nodeId} and was stopped` } })
      } else if (cancel.aborted) {
        const reason = String(cancel.reason?.message ?? 'cancelled')
        await this.settle(record, this.stopping ? 'failed' : 'canceled', this.stopping
          ? { error: { code: 'executor-stopped', message: `${this.init.nodeId} stopped while the task was running` } }
          : { note: `the run on ${this.init.nodeId} was stopped (${reason})` })
      } else {
        await this.settle(record, 'failed', { error: { code: err instanceof AgentRunError ? err.code : 'agent-failed', message: err.message } })
      }
    }
  }

  /** Earlier turns of the conversation, then this task's own, oldest first. */
  private history (record: TaskRecord): Turn[] {
    const turns: Turn[] = []
    for (const earlier of this.conversation(record.contextId)) {
      if (earlier.id === record.id) break
      turns.push({ role: 'user', text: earlier.task }, ...earlier.turns)
      if (earlier.result != null) turns.push({ role: 'agent', text: earlier.result })
    }
    if (record.turns.length > 0) turns.push({ role: 'user', text: record.task }, ...record.turns)
    return turns.slice(-c.MAX_HISTORY_TURNS)
  }

  private progress (record: TaskRecord, message: string): void {
    const entry = { at: Date.now(), message: message.slice(0, c.MAX_PROGRESS_CHARS) }
    record.progress.push(entry)
    if (record.progress.length > c.MAX_PROGRESS_KEPT) record.progress.splice(0, record.progress.length - c.MAX_PROGRESS_KEPT)
    // Progress is kept in memory at once and written with the next state change.
    this.followers.emit({ type: 'progress', id: record.id, message: entry.message, at: entry.at })
  }

  private async update (record: TaskRecord, state: TaskRecord['state']): Promise<void> {
    record.state = state
    record.updatedAt = Date.now()
    await this.init.store.save(record)
    this.followers.emit({ type: 'state', id: record.id, task: record })
  }

  private async settle (record: TaskRecord, state: TaskRecord['state'], fields: Partial<TaskRecord>): Promise<void> {
    Object.assign(record, fields)
    await this.update(record, state)
  }
}
