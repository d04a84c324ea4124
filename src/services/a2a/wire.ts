/**
 * The A2A 1.0 JSON-RPC binding as far as clawmatrix speaks it: the JSON forms
 * of Message, Task, the stream events and the JSON-RPC envelope (the
 * protobuf JSON mapping the official `@a2a-js/sdk` reads and writes), text
 * parts only on the way out. Inbound JSON is checked here; nothing a client
 * sends is trusted past these functions.
 */
import { randomUUID } from 'node:crypto'
import { InvalidA2AMessageError } from './errors.js'

/**
 * A2A's task states on the wire, by the names clawmatrix gives them (the
 * task layer, src/tasks/task.ts, owns the states; this is only their spelling).
 */
const WIRE_STATE: Readonly<Record<string, string>> = {
  submitted: 'TASK_STATE_SUBMITTED',
  working: 'TASK_STATE_WORKING',
  'input-required': 'TASK_STATE_INPUT_REQUIRED',
  completed: 'TASK_STATE_COMPLETED',
  failed: 'TASK_STATE_FAILED',
  canceled: 'TASK_STATE_CANCELED',
  rejected: 'TASK_STATE_REJECTED'
}

export function wireState (state: string): string {
  return WIRE_STATE[state] ?? 'TASK_STATE_UNSPECIFIED'
}

/** The clawmatrix name of a wire state, accepting 1.0 (`TASK_STATE_WORKING`) and 0.3 (`working`) spellings. */
export function stateFromWire (value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const plain = value.replace(/^TASK_STATE_/, '').toLowerCase().replace(/_/g, '-')
  return plain in WIRE_STATE ? plain : undefined
}

export interface A2APart { text?: string, data?: unknown, url?: string, raw?: string, mediaType?: string, filename?: string, metadata?: Record<string, unknown> }

export interface A2AMessage {
  messageId: string
  role: 'ROLE_USER' | 'ROLE_AGENT'
  parts: A2APart[]
  contextId?: string
  taskId?: string
  metadata?: Record<string, unknown>
}

export interface A2ATaskStatus { state: string, message?: A2AMessage, timestamp: string }

export interface A2AArtifact { artifactId: string, name?: string, parts: A2APart[] }

export interface A2ATask {
  id: string
  contextId: string
  status: A2ATaskStatus
  artifacts: A2AArtifact[]
  history: A2AMessage[]
  metadata?: Record<string, unknown>
}

/** One event of SendStreamingMessage / SubscribeToTask (a StreamResponse). */
export type A2AStreamEvent =
  | { task: A2ATask }
  | { message: A2AMessage }
  | { statusUpdate: { taskId: string, contextId: string, status: A2ATaskStatus, metadata?: Record<string, unknown> } }
  | { artifactUpdate: { taskId: string, contextId: string, artifact: A2AArtifact, append: boolean, lastChunk: boolean } }

export function agentMessage (text: string, ids: { taskId?: string, contextId?: string } = {}): A2AMessage {
  return { messageId: randomUUID(), role: 'ROLE_AGENT', parts: [{ text }], ...ids }
}

export function userMessage (text: string, ids: { taskId?: string, contextId?: string } = {}): A2AMessage {
  return { messageId: randomUUID(), role: 'ROLE_USER', parts: [{ text }], ...ids }
}

/**
 * The text of a message: text parts as they are, data parts as compact JSON
 * (as OpenClaw's A2A channel does); file parts are named, not fetched.
 */
export function textOf (message: Pick<A2AMessage, 'parts'> | undefined): string {
  const pieces: string[] = []
  for (const part of message?.parts ?? []) {
    if (typeof part.text === 'string') pieces.push(part.text)
    else if (part.data !== undefined) pieces.push(JSON.stringify(part.data))
    else if (typeof part.url === 'string') pieces.push(`[file ${part.filename ?? ''} at ${part.url}]`.replace('file  at', 'file at'))
  }
  return pieces.join('\n')
}

/** The text of a task's answer: its artifacts, else its status message. */
export function answerOf (task: A2ATask): string {
  const fromArtifacts = task.artifacts.map(artifact => textOf(artifact)).filter(text => text !== '').join('\n')
  return fromArtifacts !== '' ? fromArtifacts : textOf(task.status.message)
}

/** Context and task ids: what OpenClaw's channel accepts, so ids pass between the two unchanged. */
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/

export function checkId (value: unknown, field: string): string | undefined {
  if (value == null || value === '') return undefined
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    throw new InvalidA2AMessageError(`${field}: expected letters, digits, ".", "_", ":" or "-", at most 128 characters`)
  }
  return value
}

/** Checks an inbound message's shape; its text is capped by the caller. */
export function checkMessage (value: unknown, field = 'message'): A2AMessage {
  if (value == null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidA2AMessageError(`${field}: expected an object`)
  const message = value as Record<string, unknown>
  if (!Array.isArray(message.parts) || message.parts.length === 0) throw new InvalidA2AMessageError(`${field}.parts: expected a non-empty array`)
  const parts = message.parts.map((part, i) => {
    if (part == null || typeof part !== 'object' || Array.isArray(part)) throw new InvalidA2AMessageError(`${field}.parts[${i}]: expected an object`)
    return part as A2APart
  })
  const role = message.role === 'ROLE_AGENT' || message.role === 'agent' ? 'ROLE_AGENT' : 'ROLE_USER'
  return {
    messageId: typeof message.messageId === 'string' && message.messageId !== '' ? message.messageId : randomUUID(),
    role,
    parts,
    contextId: checkId(message.contextId, `${field}.contextId`),
    taskId: checkId(message.taskId, `${field}.taskId`),
    metadata: message.metadata != null && typeof message.metadata === 'object' ? message.metadata as Record<string, unknown> : undefined
  }
}

/** Checks a Task from an A2A server (an external agent), filling what 0.3 servers leave out. */
export function checkTask (value: unknown): A2ATask {
  if (value == null || typeof value !== 'object') throw new InvalidA2AMessageError('task: expected an object')
  const task = value as Record<string, any>
  if (typeof task.id !== 'string') throw new InvalidA2AMessageError('task.id: expected a string')
  return {
    id: task.id,
    contextId: typeof task.contextId === 'string' ? task.contextId : '',
    status: { state: String(task.status?.state ?? 'TASK_STATE_UNSPECIFIED'), message: task.status?.message, timestamp: String(task.status?.timestamp ?? new Date().toISOString()) },
    artifacts: Array.isArray(task.artifacts) ? task.artifacts : [],
    history: Array.isArray(task.history) ? task.history : []
  }
}
