import { VERSION } from '../version.js'
import type { ClusterNode } from './cluster/cluster-view.js'
import type { ConfiguredPeerState } from '../node/peer-dialer.js'
import type { ClawmatrixNode } from './clawmatrix-node.js'

/** A live libp2p connection to a peer. */
export interface PeerStatus {
  peerId: string
  /** From the peer's card, else from its identify user agent. */
  nodeId?: string
  agentVersion?: string
  direction: 'inbound' | 'outbound'
  address: string
  relayed: boolean
  rttMs?: number
  lastSeen?: string
  streams: number
}

export interface NodeStatus {
  nodeId: string
  peerId: string
  version: string
  uptimeMs: number
  listenAddresses: string[]
  /** Every node this node knows, itself first: what each offers and how it is reached. */
  cluster: ClusterNode[]
  peers: PeerStatus[]
  configuredPeers: ConfiguredPeerState[]
  /** Model hosts that failed lately, and those skipped while they cool down. */
  modelRouting: ReturnType<ClawmatrixNode['modelProxy']['proxy']['routingStatus']>
}

const NODE_IN_USER_AGENT = /\(node=([^)]+)\)/

/** What `GET /clawmatrix/status` answers. Holds no secret by construction. */
export async function nodeStatus (node: ClawmatrixNode, startedAt: number): Promise<NodeStatus> {
  const { swarm } = node
  const peers = await Promise.all(swarm.getPeers().map(async (peerId): Promise<PeerStatus | undefined> => {
    const connection = swarm.getConnections(peerId).find(c => c.status === 'open')
    if (connection == null) return undefined
    const metadata = await swarm.peerStore.get(peerId).then(p => p.metadata, () => undefined)
    const agentBytes = metadata?.get('AgentVersion')
    const agentVersion = agentBytes == null ? undefined : new TextDecoder().decode(agentBytes)
    const liveness = node.heartbeat.get(peerId)
    return {
      peerId: peerId.toString(),
      nodeId: node.view.nodeIdOf(peerId.toString()) ?? agentVersion?.match(NODE_IN_USER_AGENT)?.[1],
      agentVersion,
      direction: connection.direction,
      address: connection.remoteAddr.toString(),
      relayed: connection.remoteAddr.getComponents().some(c => c.name === 'p2p-circuit'),
      rttMs: liveness?.rttMs,
      lastSeen: liveness?.lastSeen == null ? undefined : new Date(liveness.lastSeen).toISOString(),
      streams: connection.streams.length
    }
  }))
  return {
    nodeId: node.config.nodeId,
    peerId: swarm.peerId.toString(),
    version: VERSION,
    uptimeMs: startedAt === 0 ? 0 : Date.now() - startedAt,
    listenAddresses: swarm.getMultiaddrs().map(String),
    cluster: node.view.nodes(),
    peers: peers.filter(p => p != null).sort((a, b) => (a.nodeId ?? a.peerId).localeCompare(b.nodeId ?? b.peerId)),
    configuredPeers: node.dialer.list(),
    modelRouting: node.modelProxy.proxy.routingStatus()
  }
}
