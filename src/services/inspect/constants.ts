/** Limits and timeouts of the inspection surface (docs/inspect.md). */

/** `/clawmatrix/view/1.0.0`: a member's cluster view, for `clawmatrix inspect`. */
export const VIEW_PROTOCOL_NAME = 'view'
export const VIEW_PROTOCOL_VERSION = '1.0.0'

/**
 * Largest view accepted or served. A node's entry is mostly its card, and
 * cards are capped at 64 KiB (../cluster/card.ts); real ones are a few
 * hundred bytes, so this covers clusters far larger than a full mesh suits.
 */
export const MAX_VIEW_BYTES = 4 * 1024 * 1024

/** The request is a small JSON object: room for options, nothing more. */
export const MAX_VIEW_REQUEST_BYTES = 1024

/** Both ends give up on a view exchange after this. */
export const VIEW_TIMEOUT_MS = 10_000

/** An inspector needs one stream at a time; a few spare for concurrent inspectors. */
export const MAX_VIEW_INBOUND_STREAMS = 4
export const MAX_VIEW_OUTBOUND_STREAMS = 2

/** The mesh page polls the node this often. */
export const PAGE_REFRESH_MS = 3_000
