import type { Swarm } from '../../node/swarm.js'

export interface Health {
  status: 'ok' | 'unavailable'
  /** Why not ok: a fixed sentence, never a peer, an address or a count. */
  reason?: string
}

/**
 * `GET /healthz`: ok while the swarm runs and either a peer is connected or
 * a WebSocket listener is up (a relay with no members yet is healthy; a
 * member that lost every peer is not). It is open (no bearer token), so a
 * load balancer or a container runtime can probe it, and so it says no
 * more than ok or a fixed reason.
 */
export function health (swarm: Swarm): Health {
  if (swarm.status !== 'started') return { status: 'unavailable', reason: 'the swarm is not running' }
  if (swarm.getConnections().some(c => c.status === 'open')) return { status: 'ok' }
  if (swarm.getMultiaddrs().some(a => !a.toString().includes('/p2p-circuit'))) return { status: 'ok' }
  return { status: 'unavailable', reason: 'no peer is connected and nothing is listening' }
}
