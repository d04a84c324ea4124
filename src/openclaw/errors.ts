/**
 * How the plugin fails, and the one mapping of any error of the layers
 * below to what OpenClaw shows a tool's caller (`exposedError`). Matched by
 * `name`, like every error of clawmatrix (src/services/errors.ts).
 */
import { POLICY_REFUSAL_CODES } from '../services/tools/policy.js'

/**
 * A call that cannot work as asked (unknown target, nothing to run it with).
 * OpenClaw shows the message of errors with this name to every caller,
 * including `POST /tools/invoke`, where other errors become "tool execution
 * failed"; agents see the message either way.
 */
export class ToolInputError extends Error {
  readonly status = 400

  constructor (message: string, readonly code?: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ToolInputError'
  }
}

/** A call the target node's policy refuses; shown to callers like ToolInputError, as a 403. */
export class ToolAuthorizationError extends Error {
  readonly status = 403
  readonly code = 'DENIED'

  constructor (message: string) {
    super(message)
    this.name = 'ToolAuthorizationError'
  }
}

/** A tool or gateway method called while this gateway's node is not running (or still starting). */
export class MeshNotRunningError extends Error {
  readonly code = 'MESH_NOT_RUNNING'

  constructor (message: string) {
    super(message)
    this.name = 'MeshNotRunningError'
  }
}

/** Failures of the call as asked (a bad target, nothing to run it with): their message is the answer. */
const INPUT_ERRORS = new Set(['UnknownTargetError', 'NodeIdConflictError', 'SelfTargetError', 'MeshNotRunningError', 'UnknownTaskError'])

/**
 * The one mapping of an error to what OpenClaw shows a tool's caller: bad
 * targets and refusals before any work started get the names OpenClaw shows
 * (ToolInputError, ToolAuthorizationError). Failures of the work itself
 * pass as they are (`undefined`): agents see their message, /tools/invoke
 * logs it.
 */
export function exposedError (err: unknown): Error | undefined {
  if (!(err instanceof Error)) return undefined
  if (INPUT_ERRORS.has(err.name)) return new ToolInputError(err.message, (err as { code?: string }).code, { cause: err })
  const refusal = refusalCode(err)
  if (refusal == null) return undefined
  return POLICY_REFUSAL_CODES.has(refusal) ? new ToolAuthorizationError(err.message) : new ToolInputError(err.message, refusal, { cause: err })
}

/** The refusal code when the work was refused before it started: by the one node asked, or by every candidate. */
function refusalCode (err: Error & { code?: string, failures?: Array<{ error: Error & { code?: string } }> }): string | undefined {
  if (err.name === 'RefusedError') return err.code
  if (err.name === 'RemoteWorkError' && POLICY_REFUSAL_CODES.has(err.code ?? '')) return err.code
  const failures = err.name === 'NoCandidateAcceptedError' ? err.failures ?? [] : []
  return failures.length > 0 && failures.every(f => f.error.name === 'RefusedError') ? failures[0]!.error.code : undefined
}
