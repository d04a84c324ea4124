/** Order statistics of a set of samples (milliseconds, bytes, ...). */
export interface Summary {
  n: number
  min: number
  mean: number
  p50: number
  p90: number
  p99: number
  max: number
}

/** Nearest-rank percentile of ascending `sorted` samples; `p` in 0..100. */
export function percentile (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error('percentile of no samples')
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1]!
}

export function summarize (samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    n: sorted.length,
    min: sorted[0] ?? Number.NaN,
    mean: sorted.reduce((sum, x) => sum + x, 0) / sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? Number.NaN
  }
}

/**
 * Whether `n` samples say anything about percentile `p`: p90 needs at least
 * 10 samples and p99 at least 100, otherwise the figure is just the maximum.
 */
export function meaningful (p: number, n: number): boolean {
  return n >= Math.round(100 / (100 - p))
}
