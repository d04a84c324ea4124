/** Limits and timeouts shared by every clawmatrix stream protocol (docs/protocol.md). */

/** Protocol ids are `/<prefix>/<name>/<version>`. */
export const PROTOCOL_PREFIX = 'clawmatrix'

/**
 * Largest frame payload accepted or sent. A request carries a task and its
 * context in one frame; outputs are streamed in far smaller chunks.
 */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024

/**
 * A reader pauses its stream when this much is buffered (and a whole frame
 * waits), and resumes below the low mark: the sender then sees back-pressure.
 * With yamux's stream window at 4 MB (src/node/constants.ts) the bytes in
 * flight while paused stay under libp2p's 4 MiB read-buffer limit.
 */
export const READ_HIGH_WATER_BYTES = 1024 * 1024
export const READ_LOW_WATER_BYTES = 256 * 1024

/**
 * A receiver sends a keep-alive when it wrote nothing for this long, so long
 * work is never cut by an idle timeout on the path (yamux, proxies, relays).
 */
export const KEEPALIVE_INTERVAL_MS = 15_000

/** A caller gives up on a stream that stayed silent this long (four missed keep-alives). */
export const IDLE_TIMEOUT_MS = 4 * KEEPALIVE_INTERVAL_MS

/** How long a receiver waits for the request frame of a new stream. */
export const REQUEST_TIMEOUT_MS = 10_000

/** How long a caller waits for `accepted`/`rejected` before trying the next candidate (a hand-off's or task's last candidate: IDLE_TIMEOUT_MS). */
export const ACCEPT_TIMEOUT_MS = 15_000

/** Budget for the best-effort frames written on the way out (error, cancel) and for closing. */
export const GOODBYE_TIMEOUT_MS = 2_000

/** A failed stream whose remote does not close its side is reset after this. */
export const FAILED_STREAM_LINGER_MS = 10_000
