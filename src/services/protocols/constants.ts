/** Names, versions and defaults of the clawmatrix work protocols (docs/protocol.md). */

export const HANDOFF_PROTOCOL_NAME = 'handoff'
export const HANDOFF_PROTOCOL_VERSION = '1.0.0'
export const SEND_PROTOCOL_NAME = 'send'
export const SEND_PROTOCOL_VERSION = '1.0.0'
export const TOOL_PROTOCOL_NAME = 'tool'
export const TOOL_PROTOCOL_VERSION = '1.0.0'

/** Streams per protocol and connection; a peer opening more gets them reset by the muxer. */
export const MAX_INBOUND_STREAMS = 32
export const MAX_OUTBOUND_STREAMS = 64

/** Hand-offs running at once on a node; more are refused with "busy". */
export const MAX_CONCURRENT_RUNS = 8
/** A hand-off that names no timeout runs for at most an hour. */
export const HANDOFF_TIMEOUT_MS = 60 * 60 * 1000
/** Upper bound on any requested hand-off or tool timeout. */
export const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000
/**
 * A run whose every caller vanished without a `cancel` (connection lost) is
 * cancelled after this, unless a retry with the same id attaches first.
 */
export const ORPHAN_GRACE_MS = 60_000
/** Finished hand-offs are remembered this long so a retried id gets the same result. */
export const RESULT_TTL_MS = 10 * 60 * 1000
export const MAX_REMEMBERED_RESULTS = 1000
/** A hand-off answer is cut to this (as JSON) so it fits one frame. */
export const MAX_RESULT_BYTES = 1024 * 1024

/** Tool calls running at once on a node; more are refused with "busy". */
export const MAX_CONCURRENT_TOOL_CALLS = 16

/** How long a message sink may take to store a one-way message. */
export const DELIVER_TIMEOUT_MS = 30_000
/** Message ids remembered so a resent message is not delivered twice. */
export const MAX_REMEMBERED_MESSAGES = 1000

/**
 * The caller's own deadline runs this much past the timeout it sends, so
 * the remote's "timeout" result normally arrives before the caller gives up.
 */
export const DEADLINE_SLACK_MS = 5_000
