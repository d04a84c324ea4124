import { percentile } from './stats.js'

/** How often the lag probe ticks; a late tick means the event loop was busy (or the process not scheduled). */
const TICK_MS = 20
/** Enough for 10 minutes of ticks; older samples are dropped. */
const MAX_SAMPLES = 30_000

/**
 * Event loop lag: how much later than asked a 20 ms timer fires. Measured by
 * hand because monitorEventLoopDelay reports the timer's own interval and
 * was seen to miss a 500 ms block entirely.
 */
export class LoopLag {
  private samples: number[] = []
  private expected = performance.now() + TICK_MS

  constructor () {
    setInterval(() => {
      const now = performance.now()
      this.samples.push(Math.max(0, now - this.expected))
      if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES)
      this.expected = now + TICK_MS
    }, TICK_MS).unref()
  }

  /** Drops the samples so far; whatever blocked the loop until now (a GC the caller just ran) is not counted. */
  reset (): void {
    this.samples = []
    this.expected = performance.now() + TICK_MS
  }

  /** Lag percentiles in ms since the last reset (0 when there are no samples yet). */
  read (): { delayP50Ms: number, delayP99Ms: number, delayMaxMs: number } {
    if (this.samples.length === 0) return { delayP50Ms: 0, delayP99Ms: 0, delayMaxMs: 0 }
    const sorted = [...this.samples].sort((a, b) => a - b)
    return { delayP50Ms: percentile(sorted, 50), delayP99Ms: percentile(sorted, 99), delayMaxMs: sorted[sorted.length - 1]! }
  }
}
