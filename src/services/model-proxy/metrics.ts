/**
 * Feeds the node's metrics (src/services/inspect/metrics.ts) from the model
 * proxy's observer: requests by outcome, latency, bytes and failovers, under
 * the model protocol's id. Typed by shape, so the proxy does not depend on
 * the metrics implementation.
 */
import type { ModelProxyObserver, ProxiedRequestRecord } from './model-proxy.js'
import type { ServedRequest } from './model-protocol.js'

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
}

const REQUESTED: Record<ProxiedRequestRecord['outcome'], 'ok' | 'cut' | 'cancelled' | 'error'> = { ok: 'ok', cut: 'cut', cancelled: 'cancelled', error: 'error' }
const SERVED: Record<ServedRequest['outcome'], 'ok' | 'rejected' | 'error' | 'cut' | 'cancelled'> = {
  ok: 'ok', refused: 'rejected', 'upstream-error': 'error', failed: 'cut', cancelled: 'cancelled'
}

/** An observer that records into `metrics`, then passes every record on to `next`. */
export function metricsObserver (metrics: RequestMetrics, protocol: string, next?: ModelProxyObserver): ModelProxyObserver {
  return {
    requested: record => {
      const outcome = record.outcome === 'error' && (record.status === 404 || record.status === 503) ? 'rejected' : REQUESTED[record.outcome]
      metrics.requestFinished({ protocol, direction: 'outbound', outcome, durationMs: record.durationMs, bytesReceived: record.bytes })
      for (let i = 0; i < record.failovers; i++) metrics.failover(protocol)
      next?.requested?.(record)
    },
    served: record => {
      metrics.requestFinished({ protocol, direction: 'inbound', outcome: SERVED[record.outcome], durationMs: record.durationMs, bytesSent: record.bytes })
      next?.served?.(record)
    }
  }
}
