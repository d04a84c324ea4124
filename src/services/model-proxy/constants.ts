/** Names, limits and defaults of the model proxy (docs/model-proxy.md). */
import { DEFAULT_RESPONSE_TIMEOUT_MS } from '../models/constants.js'

/** `/clawmatrix/model/1.0.0`: one model request per stream, its answer streamed back. */
export const MODEL_PROTOCOL_NAME = 'model'
export const MODEL_PROTOCOL_VERSION = '1.0.0'

/**
 * `/clawmatrix/model/1.1.0`: the same frames, but a stream carries one
 * request after another (each with an `id` the host echoes in its first
 * and final frames) instead of closing after the first.
 */
export const MODEL_PROTOCOL_REUSE_VERSION = '1.1.0'

/** Host: a reused stream that brought no next request for this long is closed. */
export const NEXT_REQUEST_TIMEOUT_MS = 60_000

/**
 * Largest request body the HTTP endpoint accepts. A request travels in one
 * frame, so the protocol's frame limit is this plus room for the envelope.
 * Images inlined as base64 make chat bodies large; 8 MiB holds a few.
 */
export const MAX_REQUEST_BODY_BYTES = 8 * 1024 * 1024
export const REQUEST_FRAME_OVERHEAD_BYTES = 64 * 1024

/**
 * Streams per connection and protocol. Many agents on one node may talk to
 * one model host at once, and each request is a stream.
 */
export const MAX_MODEL_INBOUND_STREAMS = 256
export const MAX_MODEL_OUTBOUND_STREAMS = 256

/** Upstream requests a node serves at once, for itself and others; more are refused with "busy". */
export const MAX_CONCURRENT_REQUESTS = 256

/**
 * How long a caller waits for a host's first answer (the upstream's
 * headers, or a refusal). The host's own upstream timeout fires first and
 * comes back as a 504; this only bounds a host that went quiet. Keep-alives
 * cover the wait on the mesh.
 */
export const ANSWER_TIMEOUT_MS = DEFAULT_RESPONSE_TIMEOUT_MS + 10_000

/** Opening a stream to a host (dial included); past it the next host is tried. */
export const OPEN_TIMEOUT_MS = 10_000

/**
 * Upstream statuses that say the request itself is wrong: every host would
 * answer the same, so they are passed to the client instead of failing
 * over. Anything else before the first byte (unreachable, 5xx, 429, a bad
 * key on that host) moves on to the next host.
 */
export const FINAL_UPSTREAM_STATUSES: ReadonlySet<number> = new Set([400, 413, 422])
