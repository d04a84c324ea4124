import type { FrameStream } from './frame-stream.js'

/**
 * Writes a `keepalive` frame whenever the stream carried nothing for about
 * `intervalMs`, for as long as the work behind it runs. A keep-alive that
 * is still waiting for the stream to drain is not followed by another.
 */
export class KeepAlive {
  private timer?: ReturnType<typeof setInterval>
  private pending = false

  constructor (private readonly frames: FrameStream, private readonly intervalMs: number) {}

  start (): void {
    // Ticking at half the interval keeps the longest silence under 1.5 intervals.
    this.timer = setInterval(() => { this.tick() }, Math.max(1, Math.floor(this.intervalMs / 2)))
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  private tick (): void {
    if (this.pending || Date.now() - this.frames.lastWriteAt < this.intervalMs) return
    this.pending = true
    this.frames.write({ type: 'keepalive' })
      .catch(() => { this.stop() })
      .finally(() => { this.pending = false })
  }
}
