import { join } from 'node:path'
import { libp2pComponents } from '../services/wire/components.js'
import * as c from './constants.js'
import { TaskCaller, type SubmitOptions, type TaskDelivery } from './caller.js'
import { TaskExecutor } from './executor.js'
import { registerTaskRoutes } from './http-routes.js'
import { RouteGroup } from '../services/http/local-server.js'
import { TaskProtocol } from './protocol.js'
import { TaskStore } from './store.js'
import type { TaskEvent, TaskRecord } from './task.js'
import type { ClawmatrixNode } from '../services/clawmatrix-node.js'
import type { Startable } from '@libp2p/interface'

export interface TaskServiceInit {
  /** Hands a settled task to the session that started it (the OpenClaw plugin); none for standalone nodes. */
  deliver?: TaskDelivery
  /** Finished records are removed after this. @default 7 days (TASK_MAX_AGE_MS) */
  maxAgeMs?: number
  /** Records kept per role (caller, executor), oldest finished first out. @default 1000 (TASK_MAX_RECORDS) */
  maxRecords?: number
  /** Tasks running here at once for other nodes. @default 8 (MAX_CONCURRENT_TASKS) */
  maxConcurrentTasks?: number
  /** Timeout of a task that names none. @default 1 hour (TASK_TIMEOUT_MS) */
  defaultTimeoutMs?: number
}

/**
 * The task layer of one node (docs/tasks.md): hand-offs as tasks that
 * outlive the call. As caller it submits, follows, answers and cancels
 * tasks on other nodes and keeps their records; as executor it runs tasks
 * for other nodes with the node's agents. Both keep their records in
 * `<stateDir>/tasks/`. This class is the task API the CLI, the OpenClaw
 * tools and an A2A endpoint build on.
 */
export class TaskService implements Startable {
  readonly protocol: TaskProtocol
  readonly executor: TaskExecutor
  readonly caller: TaskCaller
  private readonly stores: TaskStore[]
  private readonly routes: RouteGroup

  constructor (node: ClawmatrixNode, stateDir: string, init: TaskServiceInit = {}) {
    const { nodeId } = node.config
    const peerId = node.peerId.toString()
    const log = node.swarm.logger.forComponent('clawmatrix:tasks')
    const store = (role: string): TaskStore => new TaskStore({
      dir: join(stateDir, c.TASKS_DIR, role),
      maxAgeMs: init.maxAgeMs ?? c.TASK_MAX_AGE_MS,
      maxRecords: init.maxRecords ?? c.TASK_MAX_RECORDS
    })
    const executorStore = store('executor')
    const callerStore = store('caller')
    this.stores = [executorStore, callerStore]
    this.executor = new TaskExecutor({
      nodeId, peerId, runner: node.work.agents, store: executorStore, log,
      maxConcurrentTasks: init.maxConcurrentTasks, defaultTimeoutMs: init.defaultTimeoutMs
    })
    this.protocol = new TaskProtocol(libp2pComponents(node.swarm), {
      nodeId, executor: this.executor, admit: node.work.admit, audit: node.work.audit, describePeer: node.work.describePeer, callerName: peer => node.callerName(peer)
    })
    this.caller = new TaskCaller({ nodeId, peerId, store: callerStore, protocol: this.protocol, client: node.client, view: node.view, connections: node.swarm, log, deliver: init.deliver })
    this.routes = new RouteGroup(node.http)
  }

  async start (): Promise<void> {
    for (const store of this.stores) await store.load()
    await this.executor.start()
    await this.protocol.start()
    this.caller.start()
    registerTaskRoutes(this.routes, this)
  }

  async stop (): Promise<void> {
    this.routes.clear()
    await this.caller.stop()
    await this.protocol.stop()
    await this.executor.stop()
  }

  /** Hands `task` to the agent `target` resolves to; resolves with the record once a node accepted it. */
  async submit (target: string | undefined, task: string, options: SubmitOptions = {}): Promise<TaskRecord> {
    return this.caller.submit(target, task, options)
  }

  /** A task this node started, as last heard. */
  get (id: string): TaskRecord {
    return this.caller.get(id)
  }

  /** The tasks this node started (newest first), optionally only one session's. */
  list (session?: string): TaskRecord[] {
    return this.caller.list(session)
  }

  /** Asks the executor for the task's current state. */
  async refresh (id: string, signal?: AbortSignal): Promise<TaskRecord> {
    return this.caller.refresh(id, signal)
  }

  /** Answers `input-required` (same task resumes) or follows up a finished task (new task, same contextId). */
  async message (id: string, message: string, signal?: AbortSignal): Promise<TaskRecord> {
    return this.caller.message(id, message, signal)
  }

  async cancel (id: string, signal?: AbortSignal): Promise<{ record: TaskRecord, stopped: boolean }> {
    return this.caller.cancel(id, signal)
  }

  /** Turns delivery of a task's settled states into its owner's session on or off. */
  async setAnnounce (id: string, announce: boolean): Promise<void> {
    await this.caller.setAnnounce(id, announce)
  }

  /** Progress and state changes of a task as they reach this node. */
  follow (id: string, listener: (event: TaskEvent) => void): () => void {
    return this.caller.follow(id, listener)
  }

  /** Resolves once the task ended or asks for input. */
  async untilSettled (id: string, signal?: AbortSignal): Promise<TaskRecord> {
    return this.caller.untilSettled(id, signal)
  }
}

/** Builds the task layer of `node` and has the node start and stop it. */
export function attachTasks (node: ClawmatrixNode, stateDir: string, init: TaskServiceInit = {}): TaskService {
  const service = new TaskService(node, stateDir, init)
  node.extend(service, 'tasks')
  return service
}
