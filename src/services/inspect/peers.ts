import { isRelayed } from '../cluster/cluster-view.js'
import type { Swarm } from '../../node/swarm.js'
import type { ClusterView } from '../cluster/cluster-view.js'
import type { Connection } from '@libp2p/interface'

/** One open stream on a connection. */
export interface StreamReport {
  protocol?: string
  direction: 'inbound' | 'outbound'
  ageMs: number
}

/** One live libp2p connection, as `GET /clawmatrix/peers` reports it. */
export interface ConnectionReport {
  peerId: string
  /** From the peer's card, if this node accepted one. */
  nodeId?: string
  direction: 'inbound' | 'outbound'
  /** `ws`, `tls/ws` (wss) or `circuit` (through a relay). */
  transport: string
  relayed: boolean
  /** The relay a circuit runs through. */
  via?: { peerId: string, nodeId?: string }
  address: string
  encryption?: string
  multiplexer?: string
  /** Set when the connection carries relay limits (clawmatrix relays run without them). */
  limits?: { bytes?: string, seconds?: number }
  openedAt: string
  ageMs: number
  /** Round-trip time to the peer (the heartbeat's last ping). */
  rttMs?: number
  streams: StreamReport[]
}

export interface PeersReport {
  nodeId: string
  peerId: string
  connections: ConnectionReport[]
}

/** Every open connection of the swarm, with its transport and streams, sorted by node. */
export function peersReport (swarm: Swarm, view: ClusterView, nodeId: string, now = Date.now()): PeersReport {
  // The heartbeat measures every peer; libp2p's own connection monitor is off (src/node/swarm.ts).
  const rtts = new Map(view.nodes().map(node => [node.peerId, node.rttMs]))
  const connections = swarm.getConnections()
    .filter(connection => connection.status === 'open')
    .map(connection => describeConnection(connection, view, now, rtts.get(connection.remotePeer.toString())))
    .sort((a, b) => (a.nodeId ?? a.peerId).localeCompare(b.nodeId ?? b.peerId) || a.ageMs - b.ageMs)
  return { nodeId, peerId: swarm.peerId.toString(), connections }
}

function describeConnection (connection: Connection, view: ClusterView, now: number, heartbeatRttMs?: number): ConnectionReport {
  const address = connection.remoteAddr.toString()
  const relayed = isRelayed(address)
  const relayPeer = relayed ? address.match(/\/p2p\/(\w+)\/p2p-circuit/)?.[1] : undefined
  const peerId = connection.remotePeer.toString()
  const { limits } = connection
  return {
    peerId,
    nodeId: view.nodeIdOf(peerId),
    direction: connection.direction,
    transport: transportOf(connection),
    relayed,
    via: relayPeer == null ? undefined : { peerId: relayPeer, nodeId: view.nodeIdOf(relayPeer) },
    address,
    encryption: connection.encryption,
    multiplexer: connection.multiplexer,
    limits: limits == null ? undefined : { bytes: limits.bytes?.toString(), seconds: limits.seconds },
    openedAt: new Date(connection.timeline.open).toISOString(),
    ageMs: now - connection.timeline.open,
    rttMs: connection.rtt ?? heartbeatRttMs,
    streams: connection.streams.map(stream => ({
      protocol: stream.protocol,
      direction: stream.direction,
      ageMs: now - stream.timeline.open
    }))
  }
}

/** The transport in the words of a multiaddr: `ws`, `tls/ws`, or `circuit`. */
export function transportOf (connection: Pick<Connection, 'remoteAddr'>): string {
  const names = connection.remoteAddr.getComponents().map(c => c.name)
  if (names.includes('p2p-circuit')) return 'circuit'
  if (names.includes('wss') || (names.includes('tls') && names.includes('ws'))) return 'tls/ws'
  if (names.includes('ws')) return 'ws'
  return names.filter(name => !['ip4', 'ip6', 'dns', 'dns4', 'dns6', 'tcp', 'p2p'].includes(name)).join('/') || 'unknown'
}
