/**
 * A deadline that does not expire while this process was not running.
 *
 * Inside a host such as an OpenClaw gateway the event loop can be blocked for
 * seconds by the host's synchronous work (its SQLite state writes after an
 * agent turn). When the loop resumes, expired timers run before the I/O that
 * arrived meanwhile is read, so a plain timeout would call a request missing
 * that is sitting in the socket. A timer that fires more than LATE_MS after
 * it was due (the loop was blocked) is re-armed once for `graceMs`, which
 * lets that I/O through; a deadline that really passed costs at most
 * `graceMs` more.
 */
const LATE_MS = 50

export class WakefulDeadline {
  private readonly controller = new AbortController()
  private timer: ReturnType<typeof setTimeout>
  private regraced = false

  constructor (private readonly ms: number, private readonly graceMs = 500) {
    const due = performance.now() + ms
    const fire = (): void => {
      if (!this.regraced && performance.now() - due > LATE_MS) {
        this.regraced = true
        this.timer = setTimeout(fire, this.graceMs)
        this.timer.unref?.()
        return
      }
      this.controller.abort(new DOMException(`deadline of ${this.ms} ms passed`, 'TimeoutError'))
    }
    this.timer = setTimeout(fire, ms)
    this.timer.unref?.()
  }

  /** Aborted with a `TimeoutError` once the deadline passed. */
  get signal (): AbortSignal {
    return this.controller.signal
  }

  /** Ends the timer: the awaited thing came (or was given up) before the deadline. */
  clear (): void {
    clearTimeout(this.timer)
  }
}
