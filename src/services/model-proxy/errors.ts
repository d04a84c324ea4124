/**
 * How the proxy fails, in the terms an OpenAI client understands: every
 * error that reaches a client is an UpstreamError, an HTTP status with an
 * OpenAI-style body, whether it came from an upstream, a host or the mesh.
 */
import { RefusedError } from '../wire/errors.js'
import { UpstreamError } from '../models/errors.js'
import { FINAL_UPSTREAM_STATUSES } from './constants.js'
import { httpErrorOf } from '../errors.js'
import type { LoadField } from './messages.js'

/**
 * A host refused before the first byte (no such model there, busy, or its
 * upstream failed to start answering). `upstream` carries that upstream's
 * error when there was one, to be passed on if no other host does better.
 */
export class HostRefusedError extends RefusedError {
  /** The host's load for the model, when it said. */
  load?: LoadField

  constructor (code: string, message: string, readonly upstream?: UpstreamError) {
    super(code, message)
    this.name = 'HostRefusedError'
  }

  /** A refusal every host would repeat: the request itself is wrong. No other host is tried. */
  get final (): boolean {
    return this.upstream != null && FINAL_UPSTREAM_STATUSES.has(this.upstream.status)
  }
}

/** The model names nothing the cluster offers; the message lists what it does. */
export function unknownModel (message: string): UpstreamError {
  return UpstreamError.of(404, 'invalid_request_error', message, { code: 'model_not_found', param: 'model' })
}

/** No host of the model could be reached or would take the request. */
export function noHostAvailable (message: string): UpstreamError {
  return UpstreamError.of(503, 'server_error', message, { code: 'no_host_available' })
}

/** Every host of the model is at its limit or cooling down: come back after `retryAfterSeconds`. */
export function clusterSaturated (message: string, retryAfterSeconds: number): UpstreamError {
  const error = UpstreamError.of(429, 'rate_limit_error', message, { code: 'cluster_saturated' })
  error.retryAfterSeconds = Math.max(1, retryAfterSeconds)
  return error
}

/** The answer stopped before its end marker: the host, the mesh or the upstream went away. */
export function answerCut (message: string): UpstreamError {
  return UpstreamError.of(502, 'upstream_stream_cut', message, { code: 'stream_cut' })
}

export function badRequest (message: string, param?: string): UpstreamError {
  return UpstreamError.of(400, 'invalid_request_error', message, { param: param ?? null })
}

export function tooLarge (message: string): UpstreamError {
  return UpstreamError.of(413, 'invalid_request_error', message, { code: 'request_too_large' })
}

/**
 * Anything thrown as an UpstreamError a client can be answered with: a host's
 * refusal as its upstream's answer, any other error through the local
 * endpoint's one mapping (../errors.ts `httpErrorOf`).
 */
export function asUpstreamError (err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err
  if (err instanceof HostRefusedError && err.upstream != null) return err.upstream
  const { status, body } = httpErrorOf(err)
  return new UpstreamError(status, body)
}
