/**
 * A task is a hand-off that outlives the call: an id, a state and an owner,
 * recorded on both the calling and the executing node. The states are
 * exactly A2A's (a2a-protocol.org, TaskState), so an A2A endpoint can
 * expose a task as it is.
 */
export const TASK_STATES = ['submitted', 'working', 'input-required', 'completed', 'failed', 'canceled', 'rejected'] as const
export type TaskState = typeof TASK_STATES[number]

/** States a task never leaves (except a provisional `failed`, see TaskRecord.provisional). */
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set(['completed', 'failed', 'canceled', 'rejected'])

/** States in which the task waits for nothing but its own run. */
export function isActive (state: TaskState): boolean {
  return state === 'submitted' || state === 'working'
}

export function isTerminal (state: TaskState): boolean {
  return TERMINAL_STATES.has(state)
}

/** One turn of a conversation: what the caller said, what the agent answered or asked. */
export interface Turn {
  role: 'user' | 'agent'
  text: string
}

export interface TaskError {
  code: string
  message: string
}

/** Who started a task: the calling node and, inside OpenClaw, the calling session. */
export interface TaskOwner {
  nodeId: string
  /** The calling node's peer id (authenticated by the connection on the executor). */
  peerId: string
  /** The calling OpenClaw session key, or what the caller calls itself (informational). */
  session?: string
  /**
   * Caller records only: whether settled states are delivered into `session`
   * (default true; false while a caller waits for the task itself).
   */
  announce?: boolean
}

/** One progress report of the executing agent, as it came. */
export interface TaskProgress {
  at: number
  message: string
}

/**
 * A task as both ends record it (`<stateDir>/tasks/<role>/<id>.json`) and as
 * the task API returns it.
 */
export interface TaskRecord {
  id: string
  /** Shared by every task of one conversation; a new task with it continues the same remote session. */
  contextId: string
  /** `caller`: this node started it; `executor`: this node runs it for `owner`. */
  role: 'caller' | 'executor'
  state: TaskState
  agent: string
  /** The node that runs it (its node id) and its peer id. */
  node: string
  peerId: string
  owner: TaskOwner
  /** The task as handed off. */
  task: string
  context?: unknown
  /** Turns of this task after the first: questions (`input-required`) and the caller's answers. */
  turns: Turn[]
  /** The latest progress reports (at most MAX_PROGRESS_KEPT). */
  progress: TaskProgress[]
  /** The agent's answer once `completed`. */
  result?: string
  /** The agent's question while `input-required`. */
  question?: string
  error?: TaskError
  /** A plain remark, e.g. what a cancellation could and could not stop. */
  note?: string
  timeoutMs?: number
  createdAt: number
  updatedAt: number
  /**
   * Caller records only: `failed` because the executor went away, not because
   * it said so. If the executor comes back, its own account replaces this.
   */
  provisional?: boolean
  /** Caller records only: the state last delivered to the owner's session (`<state>@<updatedAt>`). */
  delivered?: string
}

/** What followers of a task are told as it happens. */
export type TaskEvent =
  | { type: 'progress', id: string, message: string, at: number }
  | { type: 'state', id: string, task: TaskRecord }

/** Who follows which task, on the executor's side and the caller's alike; a task nobody follows holds no entry. */
export class TaskFollowers {
  private readonly byTask = new Map<string, Set<(event: TaskEvent) => void>>()

  /** Adds a follower of task `id`; the returned function removes it. */
  follow (id: string, listener: (event: TaskEvent) => void): () => void {
    let set = this.byTask.get(id)
    if (set == null) this.byTask.set(id, set = new Set())
    set.add(listener)
    return () => {
      set.delete(listener)
      if (set.size === 0 && this.byTask.get(id) === set) this.byTask.delete(id)
    }
  }

  /** Tells the task's followers, those added while it runs excepted. */
  emit (event: TaskEvent): void {
    for (const listener of [...this.byTask.get(event.id) ?? []]) listener(event)
  }
}
