import { isRelayed, type ClusterView } from '../cluster/cluster-view.js'
import type { Swarm } from '../../node/swarm.js'

/** A link between two members, as one of them reports it. */
export interface MeshLink {
  peerId: string
  relayed: boolean
}

/**
 * `GET /clawmatrix/mesh`: who is connected to whom. This node's links are its
 * live connections; every other node's come from its last card. With the
 * nodes of `/clawmatrix/status` that is enough to draw the whole mesh.
 */
export interface MeshReport {
  peerId: string
  links: Record<string, MeshLink[]>
}

export function meshReport (swarm: Swarm, view: ClusterView): MeshReport {
  const self = swarm.peerId.toString()
  const links: Record<string, MeshLink[]> = {}
  links[self] = swarm.getPeers().map(peer => ({
    peerId: peer.toString(),
    relayed: swarm.getConnections(peer).filter(c => c.status === 'open').every(c => isRelayed(c.remoteAddr.toString()))
  }))
  for (const node of view.nodes()) {
    if (node.self) continue
    links[node.peerId] = (view.card(node.peerId)?.links ?? []).map(({ peerId, relayed }) => ({ peerId, relayed }))
  }
  return { peerId: self, links }
}
