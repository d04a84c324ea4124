import { meaningful, summarize, type Summary } from './stats.js'

/** One set of samples of a measurement, e.g. "clawmatrix" or "plain libp2p". */
export interface Variant {
  name: string
  samples: number[]
  /** The row the others are compared with. */
  baseline?: boolean
}

export interface Measurement {
  what: string
  unit: 'ms' | 'us' | 'MiB' | 's' | 'MB/s' | 'KiB/min' | 'msg/min' | 'bytes' | 'chunks/s' | 'count' | 'req/s' | 'ms/s'
  variants: Variant[]
  /** Printed under the table, e.g. how the figure was taken. */
  note?: string
}

/** What a benchmark file returns: printed as tables, saved as JSON. */
export interface BenchResult {
  name: string
  title: string
  measurements: Measurement[]
}

const PERCENTILES = [50, 90, 99] as const

/** Renders a measurement as an aligned text table; p90/p99 show only with enough samples. */
export function formatMeasurement (m: Measurement): string {
  const baseline = m.variants.find(v => v.baseline === true)
  const base = baseline == null ? undefined : summarize(baseline.samples)
  const header = ['', 'n', ...PERCENTILES.map(p => `p${p}`), 'max', base == null ? '' : `p50 vs ${baseline!.name}`]
  const rows = m.variants.map(v => {
    const s = summarize(v.samples)
    return [
      v.name,
      String(s.n),
      ...PERCENTILES.map(p => meaningful(p, s.n) ? fixed(s[`p${p}`]) : '-'),
      fixed(s.max),
      base == null || v === baseline ? '' : versus(s.p50, base.p50)
    ]
  })
  const widths = header.map((_, col) => Math.max(...[header, ...rows].map(row => row[col]!.length)))
  const line = (row: string[]): string => '  ' + row.map((cell, col) =>
    col === 0 || col === row.length - 1 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!)).join('   ').trimEnd()
  return [
    `${m.what} [${m.unit}]`,
    line(header),
    ...rows.map(line),
    ...(m.note == null ? [] : [`  (${m.note})`])
  ].join('\n')
}

export function formatResult (result: BenchResult): string {
  return [`== ${result.title}`, ...result.measurements.map(formatMeasurement)].join('\n\n')
}

/** The JSON form: the raw samples plus their summaries. */
export function resultJson (result: BenchResult): unknown {
  return {
    ...result,
    measurements: result.measurements.map(m => ({
      ...m,
      variants: m.variants.map(v => ({ ...v, summary: summarize(v.samples) satisfies Summary }))
    }))
  }
}

function fixed (x: number): string {
  return x.toFixed(1)
}

function versus (value: number, base: number): string {
  const diff = value - base
  return `${diff >= 0 ? '+' : ''}${fixed(diff)} (${(value / base).toFixed(2)}x)`
}
