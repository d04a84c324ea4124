/**
 * How a CLI command fails, and the one mapping of any error to what the CLI
 * prints and the exit code it ends with. Matched by `name`, like every error
 * of clawmatrix (src/services/errors.ts).
 */

/** The command line is wrong (an unknown command, a missing or malformed argument): exit code 2. */
export class UsageError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** The command could not do what was asked, and the message says why (no node answered, a refusal): exit code 1. */
export class CommandError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'CommandError'
  }
}

/** Work sent through a node failed or was cancelled; ends the CLI with `exitCode` (130 when cancelled). */
export class WorkCallError extends Error {
  constructor (message: string, readonly exitCode = 1) {
    super(message)
    this.name = 'WorkCallError'
  }
}

/**
 * Failures the user can act on from their message alone: printed without a
 * stack trace. Anything else is a bug, or a failure this list misses, and
 * gets its stack.
 */
const EXPLAINED = new Set([
  'UsageError', 'CommandError', 'WorkCallError',
  'ConfigError', 'BindError', 'PeerKeyError', 'InspectError', 'MembershipSetupError', 'InvalidCredentialError'
])

/** What the CLI prints for an error that ended a command. */
export function describeFailure (err: any): string {
  return EXPLAINED.has(err?.name) ? String(err.message) : String(err?.stack ?? err)
}

/** The one mapping of an error to the CLI's exit code. */
export function exitCodeOf (err: any): number {
  switch (err?.name) {
    case 'UsageError': return 2
    case 'WorkCallError': return err.exitCode
    default: return 1
  }
}
