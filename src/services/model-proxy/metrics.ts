/**
 * Feeds the node's metrics (src/services/inspect/metrics.ts) from the model
 * proxy's observer: requests by outcome, latency, bytes and failovers, under
 * the model protocol's id. Typed by shape, so the proxy does not depend on
 * the metrics implementation.
 */
import type { ModelProxyObserver, ProxiedRequestRecord } from './model-proxy.js'
import type { ServedRequest } from './model-protocol.js'
import type { HostHealth } from './host-health.js'
import type { TokenUsage } from '../models/upstream.js'

export interface RequestMetrics {
  requestFinished(request: {
    protocol: string
    direction: 'outbound' | 'inbound'
    outcome: 'ok' | 'rejected' | 'error' | 'timeout' | 'cancelled' | 'cut'
    durationMs: number
    bytesSent?: number
    bytesReceived?: number
  }): void
  failover(protocol: string): void
  /** Tokens of one answer, by model, host node and calling node. */
  modelTokens?(labels: { model: string, host: string, caller: string }, usage: TokenUsage): void
  /** Where the cooldown gauges read their state when scraped. */
  observeModelHealth?(source: () => { cooling: Array<{ model: string, host: string }>, cooldowns: number }): void
}

export interface ModelMetricsContext {
  nodeId: string
  nodeIdOf: (peerId: string) => string
  health?: HostHealth
}

const REQUESTED: Record<ProxiedRequestRecord['outcome'], 'ok' | 'cut' | 'cancelled' | 'error'> = { ok: 'ok', cut: 'cut', cancelled: 'cancelled', error: 'error' }
const SERVED: Record<ServedRequest['outcome'], 'ok' | 'rejected' | 'error' | 'cut' | 'cancelled'> = {
  ok: 'ok', refused: 'rejected', 'upstream-error': 'error', failed: 'cut', cancelled: 'cancelled'
}

/** An observer that records into `metrics`, then passes every record on to `next`. */
export function metricsObserver (metrics: RequestMetrics, protocol: string, next?: ModelProxyObserver, context?: ModelMetricsContext): ModelProxyObserver {
  const health = context?.health
  if (health != null && context != null) {
    metrics.observeModelHealth?.(() => ({
      cooling: health.rows(context.nodeIdOf).filter(row => row.coolingUntil != null).map(row => ({ model: row.model, host: row.nodeId ?? row.peerId })),
      cooldowns: health.cooldowns
    }))
  }
  return {
    requested: record => {
      if (record.usage != null && context != null) metrics.modelTokens?.({ model: record.model, host: record.host ?? '', caller: context.nodeId }, record.usage)
      const outcome = record.outcome === 'error' && (record.status === 404 || record.status === 503) ? 'rejected' : REQUESTED[record.outcome]
      metrics.requestFinished({ protocol, direction: 'outbound', outcome, durationMs: record.durationMs, bytesReceived: record.bytes })
      for (let i = 0; i < record.failovers; i++) metrics.failover(protocol)
      next?.requested?.(record)
    },
    served: record => {
      if (record.usage != null && context != null) metrics.modelTokens?.({ model: record.model, host: context.nodeId, caller: context.nodeIdOf(record.from) }, record.usage)
      metrics.requestFinished({ protocol, direction: 'inbound', outcome: SERVED[record.outcome], durationMs: record.durationMs, bytesSent: record.bytes })
      next?.served?.(record)
    }
  }
}
