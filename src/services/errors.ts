/**
 * How the services layer fails: the cluster view, routing, the caller API,
 * agents, tools, inspection and the local HTTP endpoint. One class per
 * failure, matched by `name`; the protocols' own errors, whose codes cross
 * the wire, are in ./wire/errors.ts, the model upstreams' in
 * ./models/errors.ts, A2A's in ./a2a/errors.ts.
 *
 * `httpStatusOf` below is the one mapping of any error of any layer to an
 * HTTP status, and `httpErrorOf` to the status and OpenAI-style body every
 * local route answers with (the model proxy's included); tool errors (src/openclaw/errors.ts) and CLI exit codes
 * (src/cli/errors.ts) are mapped once each, the same way: by `name`, so
 * this module imports none of the layers above it.
 */
import { SHUTTING_DOWN, shuttingDownMessage } from './shutdown.js'
import { POLICY_REFUSAL_CODES } from './tools/policy.js'

/** The target matched nothing the cluster offers; the message lists what it does offer. */
export class UnknownTargetError extends Error {
  readonly code = 'UNKNOWN_TARGET'

  constructor (what: string, target: string, offers: string) {
    super(`unknown ${what} "${target}": ${offers}`)
    this.name = 'UnknownTargetError'
  }
}

export class NodeIdConflictError extends Error {
  readonly code = 'NODE_ID_CONFLICT'

  constructor (readonly nodeId: string, readonly holder: string, readonly claimant: string) {
    super(`node id "${nodeId}" is claimed by two live peers: ${holder} holds it (seen first) and ${claimant} also claims it; ` +
      `what only ${claimant} offers is reached by its peer id until one of them is renamed`)
    this.name = 'NodeIdConflictError'
  }
}

/** A target names a node this one knows of but cannot reach now. */
export class NodeOfflineError extends Error {
  readonly code = 'NODE_OFFLINE'

  constructor (readonly nodeId: string, message: string) {
    super(message)
    this.name = 'NodeOfflineError'
  }
}

/** A node the view lists could not be reached when the work was sent. */
export class NodeUnreachableError extends Error {
  readonly code = 'NODE_UNREACHABLE'

  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'NodeUnreachableError'
  }
}

/** The target resolves only to this node; the protocols are for other nodes. */
export class SelfTargetError extends Error {
  readonly code = 'SELF_TARGET'

  constructor (target: string, nodeId: string) {
    super(`"${target}" resolves only to this node (${nodeId}); run it here directly, or name another node`)
    this.name = 'SelfTargetError'
  }
}

/** The work ran, but ended badly (the agent failed, the tool failed, it was cancelled or timed out remotely). */
export class RemoteWorkError extends Error {
  constructor (readonly code: string, message: string, readonly nodeId: string) {
    super(message)
    this.name = 'RemoteWorkError'
  }
}

/** New work refused because the node is shutting down; matched by `name`. */
export class ShuttingDownError extends Error {
  readonly code = SHUTTING_DOWN

  constructor (nodeId: string) {
    super(shuttingDownMessage(nodeId))
    this.name = 'ShuttingDownError'
  }
}

/** An agent run that failed; the message reaches the caller in the result's error. */
export class AgentRunError extends Error {
  readonly code: string

  constructor (message: string, code = 'agent-failed') {
    super(message)
    this.name = 'AgentRunError'
    this.code = code
  }
}

/** A failure the tool can name: becomes a result with status "error" and this code. */
export class ToolError extends Error {
  readonly code: string

  constructor (code: string, message: string) {
    super(message)
    this.name = 'ToolError'
    this.code = code
  }
}

/** A request the local HTTP endpoint refuses, with the status to answer. */
export class HttpRequestError extends Error {
  readonly code: string

  constructor (readonly status: number, message: string) {
    super(message)
    this.name = 'HttpRequestError'
    this.code = status === 413 ? 'request_too_large' : 'invalid_request'
  }
}

/** The inspection failed; the message names the address and what to check. */
export class InspectError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'InspectError'
  }
}

/** The view could not be fetched; the message says why in an operator's words. */
export class ViewFetchError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ViewFetchError'
  }
}

/**
 * HTTP statuses of the errors a local endpoint may answer with, by `name`.
 * Anything not listed failed on the way (a remote node, an upstream): 502.
 */
const HTTP_STATUS: Record<string, number> = {
  SelfTargetError: 400,
  InvalidCredentialError: 400,
  UnknownTargetError: 404,
  NodeIdConflictError: 404,
  UnknownTaskError: 404,
  NodeOfflineError: 503,
  NodeUnreachableError: 503,
  NoCandidateAcceptedError: 503,
  ShuttingDownError: 503
}

/** Refusal codes (`RefusedError.code`) whose status is not 409 Conflict. */
const REFUSAL_STATUS: Record<string, number> = {
  ...Object.fromEntries([...POLICY_REFUSAL_CODES].map(code => [code, 403])),
  busy: 503,
  'shutting-down': 503
}

/** The one mapping of an error, of any layer, to the HTTP status a local endpoint answers with. */
export function httpStatusOf (err: unknown): number {
  const { name, status, code } = (err ?? {}) as { name?: string, status?: unknown, code?: unknown }
  // These two carry the status to answer: a refused request, an upstream's (or the model proxy's) answer.
  if ((name === 'HttpRequestError' || name === 'UpstreamError') && typeof status === 'number') return status
  if (name === 'RefusedError') return REFUSAL_STATUS[String(code)] ?? 409
  return HTTP_STATUS[name ?? ''] ?? 502
}

/** The `code` of an error body: the error's own code, else its name. */
export function errorCode (err: unknown): string {
  const { name, code } = (err ?? {}) as { name?: string, code?: unknown }
  return String(code ?? name ?? 'error')
}

/**
 * The body of an error a local endpoint answers with: OpenAI's shape, which
 * the official clients read (`message`, `type`, `param`, `code`); callers of
 * the work and task routes read its `code` and `message`.
 */
export interface ErrorBody {
  error: {
    message: string
    type: string
    param?: string | null
    code: string | number | null
  }
}

/** OpenAI's error `type` for a status. */
export function errorTypeOf (status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 404) return 'not_found_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

/**
 * What a local endpoint answers for an error of any layer: `httpStatusOf`'s
 * status and an ErrorBody. An error that carries its own body (an
 * UpstreamError: an upstream's answer, or the model proxy's) keeps it.
 */
export function httpErrorOf (err: unknown): { status: number, body: ErrorBody } {
  const status = httpStatusOf(err)
  const { body, message } = (err ?? {}) as { body?: ErrorBody, message?: unknown }
  if ((err as Error)?.name === 'UpstreamError' && body?.error != null) return { status, body }
  return { status, body: { error: { message: String(message ?? err), type: errorTypeOf(status), param: null, code: errorCode(err) } } }
}
