/**
 * A2A agent cards for the cluster's agents, as this node serves them: one
 * card per agent (its JSON-RPC endpoint is `/a2a/<agentId>` on this node,
 * whichever node hosts the agent) and one for the whole cluster.
 */
import { VERSION } from '../version.js'
import type { ClusterNode } from '../services/cluster/cluster-view.js'

/** An agent somewhere in the cluster, with the node that hosts it. */
export interface ClusterAgent {
  id: string
  description: string
  tags: string[]
  nodeId: string
}

export function clusterAgents (nodes: ClusterNode[]): ClusterAgent[] {
  const agents = new Map<string, ClusterAgent>()
  for (const node of nodes) {
    for (const agent of node.agents) {
      // An agent offered by several nodes is one A2A agent: the mesh picks the node per task.
      if (!agents.has(agent.id)) agents.set(agent.id, { id: agent.id, description: agent.description, tags: agent.tags, nodeId: node.nodeId })
    }
  }
  return [...agents.values()].sort((a, b) => a.id.localeCompare(b.id))
}

function card (name: string, description: string, url: string, skills: ClusterAgent[]): Record<string, unknown> {
  return {
    name,
    description,
    version: VERSION,
    // A2A 1.0 clients read supportedInterfaces; `url` is kept for 0.3 clients and people reading the card.
    url,
    supportedInterfaces: [{ url, protocolBinding: 'JSONRPC', protocolVersion: '1.0' }],
    capabilities: { streaming: true, pushNotifications: false },
    defaultInputModes: ['text/plain', 'application/json'],
    defaultOutputModes: ['text/plain'],
    skills: skills.map(agent => ({
      id: agent.id,
      name: agent.id,
      description: agent.description === '' ? `agent ${agent.id} on ${agent.nodeId}` : agent.description,
      tags: agent.tags
    }))
  }
}

/** The card of one agent; its JSON-RPC endpoint is `<base>/a2a/<agentId>`. */
export function agentCard (agent: ClusterAgent, base: string): Record<string, unknown> {
  const description = agent.description === '' ? `clawmatrix agent ${agent.id}` : agent.description
  return card(agent.id, description, `${base}/a2a/${encodeURIComponent(agent.id)}`, [agent])
}

/** The cluster's card: every agent as a skill; its endpoint takes the agent from `metadata.agentId`. */
export function clusterCard (nodeId: string, agents: ClusterAgent[], base: string): Record<string, unknown> {
  return card(`clawmatrix cluster via ${nodeId}`, `The agents of a clawmatrix cluster, reached through node ${nodeId}: ${agents.map(a => a.id).join(', ') || 'none yet'}`, `${base}/a2a`, agents)
}
