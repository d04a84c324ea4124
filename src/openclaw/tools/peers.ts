import Type from 'typebox'
import { textResult, type ClusterTool, type ToolScope } from './common.js'
import { pathText } from '../../services/cluster/routing.js'
import type { ClusterNode } from '../../services/cluster/cluster-view.js'

export const PeersParams = Type.Object({})

/** `cluster_peers`: the cluster view as a model reads it, with the full view in `details`. */
export function peersTool (scope: ToolScope): ClusterTool<typeof PeersParams> {
  return {
    name: 'cluster_peers',
    label: 'Cluster peers',
    description: 'List the nodes of the clawmatrix cluster this gateway belongs to: for each node its id, whether it is ' +
      'reachable (this node, direct, relayed, unreachable) and how fast, the agents, models and tags it offers, and which ' +
      'tools it runs for other nodes. Call it before cluster_handoff, cluster_send or cluster_exec/read/write/tool to ' +
      'pick a target: an agent id, a node id, or tags:<tag>.',
    parameters: PeersParams,
    async execute () {
      const node = scope.runtime.requireNode()
      const nodes = node.view.nodes()
      return textResult(formatPeers(nodes), { self: node.config.nodeId, nodes })
    }
  }
}

export function formatPeers (nodes: ClusterNode[]): string {
  const self = nodes.find(n => n.self)
  const lines = [`clawmatrix cluster: ${nodes.length} node${nodes.length === 1 ? '' : 's'}${self == null ? '' : `; this gateway is node "${self.nodeId}"`}`]
  for (const n of nodes) {
    lines.push('', `node ${n.nodeId}${n.self ? ' (this node)' : ''}${n.conflictsWith == null ? '' : n.nameHeldBy == null ? ' (id also claimed by another peer; this one keeps it)' : ` (id held by another peer: target this one by its peer id ${n.peerId})`}`)
    if (!n.self) lines.push(`  reach: ${reach(n)}`)
    lines.push(`  agents: ${n.agents.length === 0 ? 'none' : n.agents.map(a => `${a.id}${a.tags.length > 0 ? ` [${a.tags.join(', ')}]` : ''}${a.description === '' ? '' : ` - ${a.description}`}`).join('; ')}`)
    lines.push(`  models: ${n.models.length === 0 ? 'none' : n.models.map(m => `clawmatrix/${m.id}${m.description == null || m.description === '' ? '' : ` - ${m.description}`}`).join('; ')}`)
    lines.push(`  tags: ${n.tags.length === 0 ? 'none' : n.tags.join(', ')}`)
    lines.push(`  tools for other nodes: ${tools(n)}`)
  }
  return lines.join('\n')
}

function reach (n: ClusterNode): string {
  const rtt = n.rttMs == null ? '' : `, ${n.rttMs} ms`
  switch (n.reach) {
    case 'relayed': return `${pathText(n.reach, n.via)}${rtt}`
    case 'unreachable': return 'unreachable right now'
    default: return `${n.reach}${rtt}`
  }
}

function tools (n: ClusterNode): string {
  if (!n.toolProxy.enabled) return 'none (tool proxy off)'
  const allowed = n.toolProxy.allow.length === 0 || n.toolProxy.allow.includes('*') ? 'all' : n.toolProxy.allow.join(', ')
  return n.toolProxy.deny.length === 0 ? allowed : `${allowed}, except ${n.toolProxy.deny.join(', ')}`
}
