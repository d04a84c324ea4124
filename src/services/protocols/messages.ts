/**
 * The frames of the handoff, send and tool protocols as TypeBox schemas:
 * validation on receipt, and the reference for docs/protocol.md. Unknown
 * fields are ignored so a version can add optional ones.
 */
import Type, { type Static } from 'typebox'
import { MAX_TIMEOUT_MS } from './constants.js'
import { Name, PRINTABLE_PATTERN } from '../../config/schema.js'

export const Id = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$', description: 'Unique per request, e.g. a UUID' })
const AgentId = Name()
const TimeoutMs = Type.Integer({ minimum: 1, maximum: MAX_TIMEOUT_MS })
const ErrorInfo = Type.Object({ code: Type.String(), message: Type.String() })
export const Status = Type.Enum(['ok', 'error', 'cancelled', 'timeout'])

export const RejectedFrame = Type.Object({
  type: Type.Literal('rejected'),
  id: Type.Optional(Type.String()),
  code: Type.String(),
  message: Type.String()
})

export const AcceptedFrame = Type.Object({
  type: Type.Literal('accepted'),
  id: Type.String(),
  /** True when the id was already running or finished here: no second run was started. */
  attached: Type.Optional(Type.Boolean())
})

export const HandoffRequestFrame = Type.Object({
  type: Type.Literal('handoff'),
  id: Id,
  agent: AgentId,
  task: Type.String(),
  context: Type.Optional(Type.Unknown()),
  timeoutMs: Type.Optional(TimeoutMs),
  /** What the caller calls itself (its agent or session); informational, the node is known by its peer id. */
  from: Type.Optional(Type.String({ maxLength: 256 }))
})

export const HandoffProgressFrame = Type.Object({
  type: Type.Literal('progress'),
  message: Type.String()
})

export const HandoffResultFrame = Type.Object({
  type: Type.Literal('result'),
  id: Type.String(),
  status: Status,
  text: Type.String(),
  error: Type.Optional(ErrorInfo)
})

export const SendRequestFrame = Type.Object({
  type: Type.Literal('send'),
  id: Id,
  agent: AgentId,
  message: Type.String(),
  from: Type.Optional(Type.String({ maxLength: 256, pattern: PRINTABLE_PATTERN }))
})

export const DeliveredFrame = Type.Object({
  type: Type.Literal('delivered'),
  id: Type.String(),
  /** True when this id was delivered before: it was not delivered again. */
  duplicate: Type.Optional(Type.Boolean())
})

export const ToolRequestFrame = Type.Object({
  type: Type.Literal('tool'),
  id: Id,
  tool: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$' }),
  params: Type.Unknown(),
  timeoutMs: Type.Optional(TimeoutMs)
})

export const ToolOutputFrame = Type.Object({
  type: Type.Literal('output'),
  channel: Type.String(),
  text: Type.String()
})

export const ToolResultFrame = Type.Object({
  type: Type.Literal('result'),
  id: Type.String(),
  status: Status,
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  error: Type.Optional(ErrorInfo),
  truncated: Type.Optional(Type.Object({ limitBytes: Type.Integer(), shownBytes: Type.Integer(), totalBytes: Type.Integer() }))
})

export type RunStatus = Static<typeof Status>
export type ErrorInfo = Static<typeof ErrorInfo>
