import { clusterSecrets, isName } from '../config/schema.js'
import { secretFingerprint, secretUsed, type SecretUsed } from '../node/gate.js'
import { VERSION } from '../version.js'
import { RouteGroup, sendJson, type LocalHttpServer } from './http/local-server.js'
import type { ClusterNode } from './cluster/cluster-view.js'
import type { Config } from '../config/schema.js'
import type { Heartbeat } from '../node/heartbeat.js'
import type { ConfiguredPeerState, PeerDialer } from '../node/peer-dialer.js'
import type { Swarm } from '../node/swarm.js'
import type { ClusterView } from './cluster/cluster-view.js'
import type { ModelProxy } from './model-proxy/model-proxy.js'
import type { Startable } from '@libp2p/interface'

/** A live libp2p connection to a peer. */
export interface PeerStatus {
  peerId: string
  /** From the peer's card, else from its identify user agent. */
  nodeId?: string
  agentVersion?: string
  direction: 'inbound' | 'outbound'
  address: string
  relayed: boolean
  /** Which of this node's secrets the connection was secured with (its position and fingerprint, never the secret). */
  secret?: SecretUsed
  rttMs?: number
  lastSeen?: string
  streams: number
}

/** Who may be a member and under which name. */
export interface MembershipStatus {
  mode: 'unmanaged' | 'managed'
  /** One sentence on what the mode lets a member do. */
  note: string
}

export const UNMANAGED: MembershipStatus = {
  mode: 'unmanaged',
  note: 'any holder of the cluster secret can join and claim any name'
}

export const MANAGED: MembershipStatus = {
  mode: 'managed',
  note: 'only peers with a certificate from the cluster authority are members; names and tags come from certificates'
}

export interface NodeStatus {
  nodeId: string
  membership: MembershipStatus
  peerId: string
  version: string
  uptimeMs: number
  listenAddresses: string[]
  /** The secrets this node accepts, newest first, by fingerprint: what `peers[].secret` refers to. */
  secrets: string[]
  /** Every node this node knows, itself first: what each offers and how it is reached. */
  cluster: ClusterNode[]
  peers: PeerStatus[]
  configuredPeers: ConfiguredPeerState[]
  /** Model hosts that failed lately, and those skipped while they cool down. */
  modelRouting: ReturnType<ModelProxy['routingStatus']>
}

/** What a status is read from: the parts of a running node. */
export interface StatusSources {
  config: Pick<Config, 'nodeId' | 'secret' | 'secrets'>
  swarm: Swarm
  heartbeat: Pick<Heartbeat, 'get'>
  view: Pick<ClusterView, 'nodeIdOf' | 'nodes'>
  dialer: Pick<PeerDialer, 'list'>
  modelProxy: { proxy: Pick<ModelProxy, 'routingStatus'> }
  membershipStatus: MembershipStatus
}

const NODE_IN_USER_AGENT = /\(node=([^)]+)\)/

/** The node id a peer's identify user agent claims, if it is a valid one: the peer wrote it. */
function nodeIdInUserAgent (agentVersion: string | undefined): string | undefined {
  const claimed = agentVersion?.match(NODE_IN_USER_AGENT)?.[1]
  return isName(claimed) ? claimed : undefined
}

/** What `GET /clawmatrix/status` answers. Holds no secret by construction. */
export async function nodeStatus (node: StatusSources, startedAt: number): Promise<NodeStatus> {
  const { swarm } = node
  const secrets = clusterSecrets(node.config)
  const peers = await Promise.all(swarm.getPeers().map(async (peerId): Promise<PeerStatus | undefined> => {
    const connection = swarm.getConnections(peerId).find(c => c.status === 'open')
    if (connection == null) return undefined
    const metadata = await swarm.peerStore.get(peerId).then(p => p.metadata, () => undefined)
    const agentBytes = metadata?.get('AgentVersion')
    const agentVersion = agentBytes == null ? undefined : new TextDecoder().decode(agentBytes)
    const liveness = node.heartbeat.get(peerId)
    return {
      peerId: peerId.toString(),
      nodeId: node.view.nodeIdOf(peerId.toString()) ?? nodeIdInUserAgent(agentVersion),
      agentVersion,
      direction: connection.direction,
      address: connection.remoteAddr.toString(),
      relayed: connection.remoteAddr.getComponents().some(c => c.name === 'p2p-circuit'),
      secret: secretUsed(connection.encryption, secrets),
      rttMs: liveness?.rttMs,
      lastSeen: liveness?.lastSeen == null ? undefined : new Date(liveness.lastSeen).toISOString(),
      streams: connection.streams.length
    }
  }))
  return {
    nodeId: node.config.nodeId,
    membership: node.membershipStatus,
    peerId: swarm.peerId.toString(),
    version: VERSION,
    uptimeMs: startedAt === 0 ? 0 : Date.now() - startedAt,
    listenAddresses: swarm.getMultiaddrs().map(String),
    secrets: secrets.map(secretFingerprint),
    cluster: node.view.nodes(),
    peers: peers.filter(p => p != null).sort((a, b) => (a.nodeId ?? a.peerId).localeCompare(b.nodeId ?? b.peerId)),
    configuredPeers: node.dialer.list(),
    modelRouting: node.modelProxy.proxy.routingStatus()
  }
}

/** `GET /clawmatrix/status`, and the uptime it reports: counted from this part's start. */
export class StatusRoute implements Startable {
  private readonly routes: RouteGroup
  private startedAt = 0

  constructor (http: Pick<LocalHttpServer, 'route'>, private readonly sources: StatusSources) {
    this.routes = new RouteGroup(http)
  }

  start (): void {
    this.startedAt = Date.now()
    this.routes.route('GET', '/clawmatrix/status', async (_req, res) => { sendJson(res, 200, await this.status()) })
  }

  stop (): void {
    this.routes.clear()
  }

  async status (): Promise<NodeStatus> {
    return nodeStatus(this.sources, this.startedAt)
  }
}
