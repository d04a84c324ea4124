/**
 * Frames of `/clawmatrix/task/1.0.0` (docs/protocol.md section 5a) as
 * TypeBox schemas, checked on receipt. Unknown fields are ignored.
 */
import Type from 'typebox'
import { Id } from '../services/protocols/messages.js'
import { MAX_TIMEOUT_MS } from '../services/protocols/constants.js'
import { TASK_STATES } from './task.js'

const AgentId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' })

/** Start a task (or, with a known id, attach to it). */
export const SubmitFrame = Type.Object({
  type: Type.Literal('task-submit'),
  id: Id,
  agent: AgentId,
  task: Type.String({ minLength: 1 }),
  context: Type.Optional(Type.Unknown()),
  /** Continue this conversation: same agent, same remote session, its earlier turns. */
  contextId: Type.Optional(Id),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TIMEOUT_MS })),
  /** The calling session (informational, at most 256 characters). */
  session: Type.Optional(Type.String({ maxLength: 256 })),
  /** The caller's node id (informational: the executor trusts the connection's peer id). */
  from: Type.Optional(Type.String({ maxLength: 128 })),
  follow: Type.Optional(Type.Boolean())
})

/** Read a task; with `follow`, stay for its events until it stops working. */
export const GetFrame = Type.Object({
  type: Type.Literal('task-get'),
  id: Id,
  follow: Type.Optional(Type.Boolean())
})

/** The caller's answer to `input-required`, which resumes the task. */
export const MessageFrame = Type.Object({
  type: Type.Literal('task-message'),
  id: Id,
  message: Type.String({ minLength: 1 }),
  follow: Type.Optional(Type.Boolean())
})

export const CancelFrame = Type.Object({
  type: Type.Literal('task-cancel'),
  id: Id
})

const State = Type.Enum([...TASK_STATES])

/** The executor's record of a task, as sent (the wire form of TaskRecord, role-less). */
export const TaskSnapshot = Type.Object({
  id: Type.String(),
  contextId: Type.String(),
  state: State,
  agent: Type.String(),
  task: Type.String(),
  turns: Type.Array(Type.Object({ role: Type.Enum(['user', 'agent']), text: Type.String() })),
  progress: Type.Array(Type.Object({ at: Type.Number(), message: Type.String() })),
  result: Type.Optional(Type.String()),
  question: Type.Optional(Type.String()),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
  note: Type.Optional(Type.String()),
  createdAt: Type.Number(),
  updatedAt: Type.Number()
})

/** Answer to every request: the task as the executor has it. Final, except right after `accepted`-style follows. */
export const TaskFrame = Type.Object({
  type: Type.Literal('task'),
  task: TaskSnapshot,
  /** task-submit: the id was known here, nothing new was started. */
  attached: Type.Optional(Type.Boolean()),
  /** The stream stays open: events follow, then a final `task` frame. */
  following: Type.Optional(Type.Boolean()),
  /** task-cancel: whether the executor could stop the run (false: it goes on, its outcome is discarded). */
  stopped: Type.Optional(Type.Boolean())
})

/** While following: the agent reported progress. */
export const TaskProgressFrame = Type.Object({
  type: Type.Literal('task-progress'),
  id: Type.String(),
  message: Type.String(),
  at: Type.Number()
})

/** While following: the task changed state (still working, or about to end the follow). */
export const TaskStateFrame = Type.Object({
  type: Type.Literal('task-state'),
  task: TaskSnapshot
})
