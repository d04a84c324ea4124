import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { isRelayed, type ClusterNode } from '../cluster/cluster-view.js'
import { DeadlineError, IdleTimeoutError, RefusedError, StreamCutError } from '../wire/errors.js'
import type { AnnouncementKind, AnnouncementVerdict } from '../cluster/announcer.js'
import type { Reach } from '../cluster/routing.js'
import type { Connection, PeerId } from '@libp2p/interface'

/** Token series per node, as the usage ledger's rows (../model-proxy/usage.ts). */
const MAX_TOKEN_SERIES = 4096

/** How a request ended, from the point of view of the node that counts it. */
export type RequestOutcome = 'ok' | 'rejected' | 'error' | 'timeout' | 'cancelled' | 'cut'

/** `outbound`: this node asked another; `inbound`: this node served the request. */
export type RequestDirection = 'outbound' | 'inbound'

export interface FinishedRequest {
  /** The protocol id, e.g. `/clawmatrix/model/1.0.0`. */
  protocol: string
  direction: RequestDirection
  outcome: RequestOutcome
  durationMs: number
  /** Payload bytes written and read on the stream. */
  bytesSent?: number
  bytesReceived?: number
}

/** Where the gauges read their values when scraped. */
export interface MetricsSources {
  nodes: () => ClusterNode[]
  meshPeers: () => Record<string, number>
  connections: () => Connection[]
}


/**
 * How often the `nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds`
 * series sample the event loop. prom-client's default, 10 ms, is a timer that
 * wakes an idle node 100 times a second: 85-90% of a lone node's idle CPU
 * (docs/benchmarks.md, idle CPU). Once a second still shows a stalled loop in
 * `_max`; each sample is the interval between two ticks, so an idle loop reads 1 s.
 */
export const EVENT_LOOP_SAMPLE_MS = 1_000

const REACHES: Reach[] = ['self', 'direct', 'relayed', 'unreachable']

/** Model calls and long `exec`s take minutes; a status-like exchange takes milliseconds. */
const DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

/**
 * clawmatrix's Prometheus metrics, next to libp2p's own, in one registry per
 * node: several nodes in one process (tests, a plugin host) each keep theirs,
 * and nothing is registered in prom-client's global registry.
 *
 * Stream protocols call `requestFinished`, `failover` and `streamOpened`;
 * gauges read the node's state when scraped (`observe`).
 */
export class ClawmatrixMetrics {
  readonly registry = new Registry()
  private sources?: MetricsSources
  private readonly requests: Counter<'protocol' | 'direction' | 'outcome'>
  private readonly duration: Histogram<'protocol' | 'direction'>
  private readonly bytesSent: Counter<'protocol' | 'direction'>
  private readonly bytesReceived: Counter<'protocol' | 'direction'>
  private readonly failovers: Counter<'protocol'>
  private readonly streams: Counter<'protocol' | 'direction' | 'path'>
  private readonly announcementsSent: Counter<'kind'>
  private readonly announcementsReceived: Counter<'verdict'>
  private readonly snapshotCards: Counter<'verdict'>
  private readonly snapshotsServed: Counter
  private readonly auditedCalls: Counter<'kind' | 'outcome'>
  private readonly info: Gauge<'node_id' | 'peer_id' | 'version'>
  private readonly modelTokensTotal: Counter<'model' | 'host' | 'caller' | 'kind'>
  /** The (model, host, caller) series of modelTokensTotal, bounded by MAX_TOKEN_SERIES. */
  private readonly tokenSeries = new Set<string>()
  private modelHealth?: () => { cooling: Array<{ model: string, host: string }>, cooldowns: number }

  constructor () {
    const registers = [this.registry]
    this.auditedCalls = new Counter({ name: 'clawmatrix_audited_calls_total', help: 'Calls this node executed for other nodes, as appended to audit.jsonl', labelNames: ['kind', 'outcome'], registers })
    this.requests = new Counter({ name: 'clawmatrix_requests_total', help: 'Requests over clawmatrix stream protocols, by how they ended', labelNames: ['protocol', 'direction', 'outcome'], registers })
    this.duration = new Histogram({ name: 'clawmatrix_request_duration_seconds', help: 'Time from opening a request stream to its final frame', labelNames: ['protocol', 'direction'], buckets: DURATION_BUCKETS_SECONDS, registers })
    this.bytesSent = new Counter({ name: 'clawmatrix_request_sent_bytes_total', help: 'Payload bytes written on request streams', labelNames: ['protocol', 'direction'], registers })
    this.bytesReceived = new Counter({ name: 'clawmatrix_request_received_bytes_total', help: 'Payload bytes read on request streams', labelNames: ['protocol', 'direction'], registers })
    this.failovers = new Counter({ name: 'clawmatrix_failovers_total', help: 'Requests moved to the next candidate after one refused or failed', labelNames: ['protocol'], registers })
    this.streams = new Counter({ name: 'clawmatrix_streams_total', help: 'Streams opened by clawmatrix protocols, direct or through a relay', labelNames: ['protocol', 'direction', 'path'], registers })
    this.announcementsSent = new Counter({ name: 'clawmatrix_announcements_sent_total', help: 'Announcements this node published', labelNames: ['kind'], registers })
    this.announcementsReceived = new Counter({ name: 'clawmatrix_announcements_received_total', help: 'Announcements judged by this node: accepted, rejected (forged, malformed) or ignored (stale, replayed)', labelNames: ['verdict'], registers })
    this.snapshotCards = new Counter({ name: 'clawmatrix_snapshot_cards_received_total', help: 'Cards received in snapshots from gossip peers, judged as gossip is: accepted, rejected (forged, malformed) or ignored (known, stale)', labelNames: ['verdict'], registers })
    this.snapshotsServed = new Counter({ name: 'clawmatrix_snapshots_served_total', help: 'Card snapshots this node served to other members', registers })
    this.info = new Gauge({ name: 'clawmatrix_node_info', help: 'This node: always 1, with its identity as labels', labelNames: ['node_id', 'peer_id', 'version'], registers })

    this.modelTokensTotal = new Counter({ name: 'clawmatrix_model_tokens_total', help: 'Model tokens from the upstreams\' usage, by model, host node, calling node and kind (input, output); each node counts what passed through it', labelNames: ['model', 'host', 'caller', 'kind'], registers })

    // The gauges below are read when scraped; the registry holds them, so they need no field.
    const sources = (): MetricsSources | undefined => this.sources
    const modelHealth = (): ReturnType<NonNullable<ClawmatrixMetrics['modelHealth']>> | undefined => this.modelHealth?.()
    new Gauge({
      name: 'clawmatrix_model_host_cooling',
      help: 'Model hosts this node skips while they cool down after failing in a row (1 per host and model)',
      labelNames: ['model', 'host'],
      registers,
      collect () {
        this.reset()
        for (const row of modelHealth()?.cooling ?? []) this.set({ model: row.model, host: row.host }, 1)
      }
    })
    new Gauge({
      name: 'clawmatrix_model_cooldowns',
      help: 'Cooldowns of model hosts started since this node started',
      registers,
      collect () {
        this.set(modelHealth()?.cooldowns ?? 0)
      }
    })
    new Gauge({
      name: 'clawmatrix_known_nodes',
      help: 'Nodes in this node\'s cluster view, by how they are reached',
      labelNames: ['reach'],
      registers,
      collect () {
        const nodes = sources()?.nodes() ?? []
        for (const reach of REACHES) this.set({ reach }, nodes.filter(n => n.reach === reach).length)
      }
    })
    new Gauge({
      name: 'clawmatrix_requests_in_flight',
      help: 'Requests this node has open to other nodes',
      registers,
      collect () {
        this.set((sources()?.nodes() ?? []).reduce((sum, n) => sum + n.inFlight, 0))
      }
    })
    new Gauge({
      name: 'clawmatrix_gossipsub_mesh_peers',
      help: 'Peers in this node\'s gossipsub mesh, by topic',
      labelNames: ['topic'],
      registers,
      collect () {
        this.reset()
        for (const [topic, peers] of Object.entries(sources()?.meshPeers() ?? {})) this.set({ topic }, peers)
      }
    })
    new Gauge({
      name: 'clawmatrix_connections',
      help: 'Open libp2p connections, direct or relayed',
      labelNames: ['path', 'direction'],
      registers,
      collect () {
        const open = (sources()?.connections() ?? []).filter(c => c.status === 'open')
        for (const path of ['direct', 'relayed'] as const) {
          for (const direction of ['inbound', 'outbound'] as const) {
            this.set({ path, direction }, open.filter(c => pathOf(c) === path && c.direction === direction).length)
          }
        }
      }
    })
  }

  /** The libp2p `metrics` option: libp2p's own `libp2p_*` series and the process's, in this node's registry. */
  libp2pMetrics (): ReturnType<typeof prometheusMetrics> {
    return prometheusMetrics({ registry: this.registry, defaultMetrics: { eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS } })
  }

  /** Where the gauges read the node's state; called once the node exists. */
  observe (sources: MetricsSources, identity: { nodeId: string, peerId: PeerId, version: string }): void {
    this.sources = sources
    this.info.set({ node_id: identity.nodeId, peer_id: identity.peerId.toString(), version: identity.version }, 1)
  }

  requestFinished (request: FinishedRequest): void {
    const { protocol, direction } = request
    this.requests.inc({ protocol, direction, outcome: request.outcome })
    this.duration.observe({ protocol, direction }, request.durationMs / 1000)
    if (request.bytesSent != null && request.bytesSent > 0) this.bytesSent.inc({ protocol, direction }, request.bytesSent)
    if (request.bytesReceived != null && request.bytesReceived > 0) this.bytesReceived.inc({ protocol, direction }, request.bytesReceived)
  }

  modelTokens (labels: { model: string, host: string, caller: string }, usage: { input: number, output: number }): void {
    // Past MAX_TOKEN_SERIES (model, host, caller) series, new ones are summed as (other): members come and go by name.
    const key = `${labels.model}\n${labels.host}\n${labels.caller}`
    if (!this.tokenSeries.has(key)) {
      if (this.tokenSeries.size >= MAX_TOKEN_SERIES) labels = { model: '(other)', host: '(other)', caller: '(other)' }
      else this.tokenSeries.add(key)
    }
    if (usage.input > 0) this.modelTokensTotal.inc({ ...labels, kind: 'input' }, usage.input)
    if (usage.output > 0) this.modelTokensTotal.inc({ ...labels, kind: 'output' }, usage.output)
  }

  observeModelHealth (source: () => { cooling: Array<{ model: string, host: string }>, cooldowns: number }): void {
    this.modelHealth = source
  }

  failover (protocol: string): void {
    this.failovers.inc({ protocol })
  }

  /** Counts a protocol stream, and whether it runs through a relay. */
  streamOpened (protocol: string, direction: RequestDirection, connection: Pick<Connection, 'remoteAddr'>): void {
    this.streams.inc({ protocol, direction, path: pathOf(connection) })
  }

  announcementSent (kind: AnnouncementKind): void {
    this.announcementsSent.inc({ kind })
  }

  audited (kind: string, outcome: string): void {
    this.auditedCalls.inc({ kind, outcome })
  }

  announcementReceived (verdict: AnnouncementVerdict): void {
    this.announcementsReceived.inc({ verdict })
  }

  snapshotCardReceived (verdict: AnnouncementVerdict): void {
    this.snapshotCards.inc({ verdict })
  }

  snapshotServed (): void {
    this.snapshotsServed.inc()
  }

  get contentType (): string {
    return this.registry.contentType
  }

  /** The Prometheus text exposition of every series. */
  async text (): Promise<string> {
    return this.registry.metrics()
  }
}

/** The outcome label for a request that ended with `err` (or succeeded, without one). */
export function outcomeOf (err?: unknown): RequestOutcome {
  if (err == null) return 'ok'
  if (err instanceof RefusedError) return 'rejected'
  if (err instanceof DeadlineError || err instanceof IdleTimeoutError || (err as Error).name === 'TimeoutError') return 'timeout'
  if ((err as Error).name === 'AbortError') return 'cancelled'
  if (err instanceof StreamCutError) return 'cut'
  return 'error'
}

function pathOf (connection: Pick<Connection, 'remoteAddr'>): 'direct' | 'relayed' {
  return isRelayed(connection.remoteAddr.toString()) ? 'relayed' : 'direct'
}
