/**
 * Token usage: read from the upstream's own `usage` as the answer passes,
 * and summed per model, host node and calling node.
 *
 * Streams carry usage only when asked (`stream_options.include_usage`):
 * the host asks for it and, when the client did not, drops the usage-only
 * chunk again. Only events that mention `"usage"` are parsed; every other
 * chunk passes as bytes.
 */
import type { ModelRoute, TokenUsage } from '../models/upstream.js'

export type { TokenUsage }

export interface UsageRow extends TokenUsage {
  model: string
  host: string
  caller: string
  requests: number
}

/** Rows above this are summed into one `(other)` row per direction, so a churning cluster cannot grow it without end. */
const MAX_ROWS = 4096

/**
 * What this node used and served. `requested`: answers its own proxy
 * received (the caller is this node); `served`: answers it gave other nodes.
 */
export class UsageLedger {
  private readonly rows = { requested: new Map<string, UsageRow>(), served: new Map<string, UsageRow>() }

  record (direction: 'requested' | 'served', row: Omit<UsageRow, 'requests' | keyof TokenUsage>, usage: TokenUsage): void {
    const rows = this.rows[direction]
    let key = `${row.model}\n${row.host}\n${row.caller}`
    if (!rows.has(key) && rows.size >= MAX_ROWS) key = '(other)'
    const entry = rows.get(key) ?? { ...(key === '(other)' ? { model: '(other)', host: '(other)', caller: '(other)' } : row), input: 0, output: 0, requests: 0 }
    entry.input += usage.input
    entry.output += usage.output
    entry.requests++
    rows.set(key, entry)
  }

  report (): { requested: UsageRow[], served: UsageRow[] } {
    const sorted = (rows: Map<string, UsageRow>): UsageRow[] => [...rows.values()]
      .map(row => ({ ...row }))
      .sort((a, b) => a.model.localeCompare(b.model) || a.host.localeCompare(b.host) || a.caller.localeCompare(b.caller))
    return { requested: sorted(this.rows.requested), served: sorted(this.rows.served) }
  }
}

/** The body with `stream_options.include_usage` set when a stream would not carry usage otherwise; `strip` when the client did not ask. */
export function askForUsage (route: ModelRoute, body: Record<string, unknown>): { body: Record<string, unknown>, strip: boolean } {
  if (body.stream !== true || (route !== 'chat/completions' && route !== 'completions')) return { body, strip: false }
  const options = body.stream_options
  if (options != null && typeof options === 'object' && (options as Record<string, unknown>).include_usage === true) return { body, strip: false }
  return { body: { ...body, stream_options: { ...(options as object | undefined), include_usage: true } }, strip: true }
}

const USAGE = Buffer.from('"usage":')

/** holdsUsage for one event's text (a piece can hold many events, and only one of them the usage). */
const USAGE_OBJECT = /"usage": *\{/

/**
 * Whether the bytes hold a usage object: `"usage":` followed by `{`.
 * Streams asked for usage carry `"usage":null` in every chunk (OpenAI's
 * format), and those must not cost a parse.
 */
function holdsUsage (buffer: Buffer): boolean {
  for (let at = buffer.indexOf(USAGE); at !== -1; at = buffer.indexOf(USAGE, at + USAGE.length)) {
    let next = at + USAGE.length
    while (buffer[next] === 0x20) next++
    if (buffer[next] === 0x7b) return true
  }
  return false
}

/**
 * Reads usage from an OpenAI-format body as it passes, piece by piece, with
 * nothing in between: the caller's own loop hands each piece in (one async
 * generator less on every chunk's way out). `strip` drops the usage-only
 * chunk (no choices) of a stream. Streamed pieces hold whole SSE events
 * (ModelResponse.body's contract).
 */
export class UsageReader {
  /** The upstream's usage, once a piece carried it. */
  usage?: TokenUsage

  constructor (private readonly streaming: boolean, private readonly strip: boolean) {}

  /** What of `bytes` goes on to the caller: all of it, all but the usage-only chunk, or nothing (undefined). */
  pass (bytes: Uint8Array): Uint8Array | undefined {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (!holdsUsage(buffer)) return bytes
    if (!this.streaming) {
      this.found(usageOf(parse(buffer.toString('utf8'))))
      return bytes
    }
    let dropped = false
    const kept: string[] = []
    for (const event of buffer.toString('utf8').split(/(?<=\n\n)/)) {
      if (!USAGE_OBJECT.test(event)) {
        kept.push(event)
        continue
      }
      const value = parse(dataOf(event))
      const usage = usageOf(value)
      this.found(usage)
      if (this.strip && usage != null && Array.isArray(value?.choices) && value.choices.length === 0) {
        dropped = true
        continue
      }
      kept.push(event)
    }
    if (!dropped) return bytes
    return kept.length > 0 ? Buffer.from(kept.join('')) : undefined
  }

  private found (usage: TokenUsage | undefined): void {
    if (usage != null) this.usage = usage
  }
}

function dataOf (event: string): string {
  return event.split('\n').filter(line => line.startsWith('data:')).map(line => line.slice(line.startsWith('data: ') ? 6 : 5)).join('\n')
}

function parse (text: string): any {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Chat and completions: `usage`; the Responses API: `response.usage` in its last event. */
function usageOf (value: any): TokenUsage | undefined {
  const usage = value?.usage ?? value?.response?.usage
  if (usage == null || typeof usage !== 'object') return undefined
  const input = usage.prompt_tokens ?? usage.input_tokens
  const output = usage.completion_tokens ?? usage.output_tokens ?? 0
  if (typeof input !== 'number' || typeof output !== 'number') return undefined
  return { input, output }
}
