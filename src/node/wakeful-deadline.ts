import { setMaxListeners } from 'node:events'

/** A timer this much past its time was held up by a blocked event loop, not by the peer. */
const LATE_MS = 50

/** How long a deadline whose timer fired late is re-armed for. */
export const WAKE_GRACE_MS = 500

export interface WakefulDeadlineInit {
  /**
   * The operation's signal: when it aborts, so does the deadline's signal
   * (with its reason), and the timer ends.
   */
  signal?: AbortSignal
  /**
   * How long a deadline whose timer fired late (the process was blocked) is
   * re-armed for, once per `restart()`.
   *
   * @default 500
   */
  graceMs?: number
}

/**
 * A deadline that does not expire while this process was not running.
 *
 * Inside a host such as an OpenClaw gateway the event loop can be blocked for
 * seconds by the host's synchronous work (its SQLite state writes after an
 * agent turn). When the loop resumes, expired timers run before the I/O that
 * arrived meanwhile is read, so a plain timeout would call a peer silent
 * whose answer is sitting in the socket. A timer that fires more than
 * LATE_MS after it was due (the loop was blocked) is re-armed once for
 * `graceMs`, which lets that I/O through; a deadline that really passed
 * costs at most `graceMs` more.
 *
 * Every wait for a peer uses one (docs/protocol.md, "Deadlines"). It is
 * built to live for a whole request: `restart()` moves it without a new
 * timer (the timer catches up when it fires), so a silence bound costs
 * nothing per frame; `pause()` stops the clock while nothing is awaited
 * (the reader is busy elsewhere) until the next `restart()`.
 */
export class WakefulDeadline {
  private readonly controller = new AbortController()
  private readonly parent?: AbortSignal
  private readonly graceMs: number
  private timer?: ReturnType<typeof setTimeout>
  /** When the deadline passes (performance.now()); moved by restart(). */
  private due = 0
  /** When the armed timer was meant to fire. */
  private firesAt = 0
  private graced = false
  private paused = false
  /** Expired, cleared, or aborted by the operation: nothing moves it any more. */
  private ended = false
  private passed = false

  constructor (readonly ms: number, init: WakefulDeadlineInit = {}) {
    this.graceMs = init.graceMs ?? WAKE_GRACE_MS
    // Its signal goes into dials and reads that may listen many times over.
    setMaxListeners(Infinity, this.controller.signal)
    const parent = init.signal
    if (parent?.aborted === true) {
      this.ended = true
      this.controller.abort(parent.reason)
      return
    }
    if (parent != null) {
      this.parent = parent
      parent.addEventListener('abort', this.onParentAbort, { once: true })
    }
    this.due = performance.now() + ms
    this.arm(ms)
  }

  /** Aborted with a `TimeoutError` once the deadline passed, or with the operation's reason. */
  get signal (): AbortSignal {
    return this.controller.signal
  }

  /** Whether the deadline itself passed (not the operation's signal). */
  get expired (): boolean {
    return this.passed
  }

  /** The peer showed life, or is awaited again after a pause: the deadline is `ms` from now. */
  restart (): void {
    if (this.ended) return
    this.due = performance.now() + this.ms
    this.graced = false
    this.paused = false
    // A timer that found the deadline paused has stopped; the others catch up when they fire.
    if (this.timer == null) this.arm(this.ms)
  }

  /** Nothing is awaited from the peer for now: the deadline cannot pass until the next restart(). */
  pause (): void {
    this.paused = true
  }

  /** Ends the timer and the link to the operation's signal: the awaited thing came, or was given up. */
  clear (): void {
    this.ended = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.parent?.removeEventListener('abort', this.onParentAbort)
  }

  /** Ends the deadline early, failing what waits on it: its signal aborts with `reason` (it did not expire). */
  abort (reason: Error): void {
    if (this.ended) return
    this.clear()
    this.controller.abort(reason)
  }

  private arm (ms: number): void {
    this.firesAt = performance.now() + ms
    this.timer = setTimeout(this.fire, ms)
    this.timer.unref()
  }

  private readonly fire = (): void => {
    this.timer = undefined
    if (this.paused) return
    const now = performance.now()
    if (now < this.due) {
      // Restarted since the timer was set.
      this.arm(this.due - now)
      return
    }
    if (!this.graced && now - this.firesAt > LATE_MS) {
      // The loop was blocked: what arrived meanwhile is read before this runs again.
      this.graced = true
      this.arm(this.graceMs)
      return
    }
    this.passed = true
    this.clear()
    this.controller.abort(new DOMException(`deadline of ${this.ms} ms passed`, 'TimeoutError'))
  }

  private readonly onParentAbort = (): void => {
    this.ended = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.controller.abort(this.parent!.reason)
  }
}

/**
 * Runs `fn` with a signal that aborts once `ms` passed (wakefully) or
 * `signal` aborts, and ends the timer when `fn` settles: for one-off waits
 * on a peer, such as a goodbye frame waiting for the stream to drain.
 */
export async function withWakefulDeadline<T> (ms: number, fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const deadline = new WakefulDeadline(ms, { signal })
  try {
    return await fn(deadline.signal)
  } finally {
    deadline.clear()
  }
}
