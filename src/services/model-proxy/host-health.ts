/**
 * What a calling node knows about each (host, model) pair beyond the
 * cluster view: the host's last reported load for the model, and failures
 * in a row, which cool a host down for a while (LiteLLM's cooldown: 3
 * failures, 60 s by default; `modelRouting` in the config).
 */
import { DEFAULT_COOLDOWN_FAILURES, DEFAULT_COOLDOWN_MS } from '../../config/schema.js'
import type { LoadField } from './messages.js'

export interface HostHealthInit {
  /** Failures in a row that cool a host down. @default 3 */
  cooldownFailures?: number
  /** How long a cooled-down host is skipped. @default 60_000 */
  cooldownMs?: number
  now?: () => number
}

/** One host of one model that failed lately or is cooling down, as status shows it. */
export interface HostHealthRow {
  model: string
  peerId: string
  /** Failures in a row. */
  failures: number
  /** Skipped until then (ISO time), while cooling down. */
  coolingUntil?: string
}

/** A load report counts for routing this long: later, the host may have finished its work. */
const LOAD_FRESH_MS = 2_000

interface Entry {
  failures: number
  coolingUntil?: number
  load?: LoadField & { at: number }
}

export class HostHealth {
  private readonly entries = new Map<string, Entry>()
  private readonly cooldownFailures: number
  private readonly cooldownMs: number
  private readonly now: () => number
  /** Cooldowns started since the node started, for metrics. */
  cooldowns = 0

  constructor (init: HostHealthInit = {}) {
    this.cooldownFailures = init.cooldownFailures ?? DEFAULT_COOLDOWN_FAILURES
    this.cooldownMs = init.cooldownMs ?? DEFAULT_COOLDOWN_MS
    this.now = init.now ?? Date.now
  }

  /** Counts a failure; returns true when it started a cooldown. */
  failed (peerId: string, model: string): boolean {
    const entry = this.entry(peerId, model)
    entry.failures++
    if (entry.failures < this.cooldownFailures || this.coolingFor(peerId, model) > 0) return false
    entry.coolingUntil = this.now() + this.cooldownMs
    this.cooldowns++
    return true
  }

  /** The host answered: its failure count starts over. */
  succeeded (peerId: string, model: string): void {
    const entry = this.entries.get(key(peerId, model))
    if (entry == null) return
    entry.failures = 0
    entry.coolingUntil = undefined
    this.prune(peerId, model, entry)
  }

  /** Milliseconds the host stays skipped for `model`; 0 when it is not cooling down. */
  coolingFor (peerId: string, model: string): number {
    const entry = this.entries.get(key(peerId, model))
    if (entry?.coolingUntil == null) return 0
    const left = entry.coolingUntil - this.now()
    if (left > 0) return left
    // Cooled down: one more failure cools it again, as LiteLLM does.
    entry.coolingUntil = undefined
    entry.failures = this.cooldownFailures - 1
    return 0
  }

  /** Records the load a host reported with an answer or a refusal. */
  reportLoad (peerId: string, model: string, load: LoadField | undefined): void {
    if (load == null) return
    const entry = this.entry(peerId, model)
    entry.load = { ...load, at: this.now() }
    this.prune(peerId, model, entry)
  }

  /**
   * How full the host is for `model`, 0 to 1 (1: at its maxConcurrent), from
   * its last report while fresh, plus `extra` requests this node has sent it
   * since; undefined when unknown.
   */
  utilization (peerId: string, model: string, extra = 0): number | undefined {
    const load = this.entries.get(key(peerId, model))?.load
    if (load?.max == null || this.now() - load.at > LOAD_FRESH_MS) return undefined
    return Math.min(1, (load.running + extra) / load.max)
  }

  /** Hosts that failed lately or are cooling down. */
  rows (nodeIdOf: (peerId: string) => string | undefined = () => undefined): Array<HostHealthRow & { nodeId?: string }> {
    const rows: Array<HostHealthRow & { nodeId?: string }> = []
    for (const [k, entry] of this.entries) {
      const [peerId, model] = k.split('\n') as [string, string]
      const cooling = this.coolingFor(peerId, model)
      if (entry.failures === 0 && cooling === 0) continue
      rows.push({
        model,
        peerId,
        nodeId: nodeIdOf(peerId),
        failures: entry.failures,
        ...(cooling > 0 ? { coolingUntil: new Date(this.now() + cooling).toISOString() } : {})
      })
    }
    return rows.sort((a, b) => a.model.localeCompare(b.model) || a.peerId.localeCompare(b.peerId))
  }

  /** Hosts cooling down right now. */
  get cooling (): number {
    let count = 0
    for (const k of this.entries.keys()) {
      const [peerId, model] = k.split('\n') as [string, string]
      if (this.coolingFor(peerId, model) > 0) count++
    }
    return count
  }

  /** Forgets a host that left the cluster. */
  forget (peerId: string): void {
    for (const k of this.entries.keys()) {
      if (k.startsWith(`${peerId}\n`)) this.entries.delete(k)
    }
  }

  private entry (peerId: string, model: string): Entry {
    const k = key(peerId, model)
    let entry = this.entries.get(k)
    if (entry == null) this.entries.set(k, entry = { failures: 0 })
    return entry
  }

  /** Entries with nothing to remember go, so the map holds only hosts worth knowing about. */
  private prune (peerId: string, model: string, entry: Entry): void {
    if (entry.failures === 0 && entry.coolingUntil == null && (entry.load == null || entry.load.max == null)) this.entries.delete(key(peerId, model))
  }
}

function key (peerId: string, model: string): string {
  return `${peerId}\n${model}`
}
