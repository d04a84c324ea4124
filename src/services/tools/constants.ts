/** Defaults of the tool proxy (docs/protocol.md, "Tool proxy"). */

/** `exec` runs for up to 30 minutes unless the request asks otherwise. */
export const EXEC_TIMEOUT_MS = 30 * 60 * 1000

/** Every other tool, unless it declares its own default. */
export const DEFAULT_TOOL_TIMEOUT_MS = 60 * 1000

/** Upper bound on any requested timeout. */
export const MAX_TOOL_TIMEOUT_MS = 24 * 60 * 60 * 1000

/** Between SIGTERM to a process group and SIGKILL to whatever is left of it. */
export const KILL_GRACE_MS = 2_000

/**
 * After a command exits, how long to wait for its pipes to close: a
 * background child that inherited them would otherwise hold the call open.
 */
export const STDIO_DRAIN_MS = 1_000

/**
 * Output is sent in pieces of at most this many UTF-16 code units: well under the frame limit even when
 * escaped, and large enough that bulk output is not bound by the per-frame cost (16 KiB pieces halved
 * relayed throughput in the work benchmark).
 */
export const OUTPUT_CHUNK_CHARS = 64 * 1024

/**
 * Environment variables never passed to commands run for other nodes: the
 * cluster secret (the CLI reads it from this variable). Model API key
 * variables are added by the node from its config.
 */
export const SECRET_ENV_VARS = ['CLAWMATRIX_SECRET']
