/**
 * Target resolution: an agent id, a node id or `tags:<tag>[,<tag>...]` becomes
 * an ordered list of candidates to try in turn. Pure functions over a
 * snapshot of the cluster view, so the ordering rules are testable alone.
 */
import { UnknownTargetError } from '../errors.js'

export type Reach = 'self' | 'direct' | 'relayed' | 'unreachable'

/**
 * A path in words: `direct`, or `relayed via hub`; a relay without a card
 * by its peer id. The one formatting of it for status, logs, errors and
 * tools (the mesh page, browser JavaScript, keeps a copy: see ../inspect/page.ts).
 */
export function pathText (reach: Reach, via?: { nodeId?: string, peerId?: string }): string {
  return reach === 'relayed' ? `relayed via ${via?.nodeId ?? via?.peerId ?? 'a relay'}` : reach
}

export interface RoutableNode {
  nodeId: string
  peerId: string
  reach: Reach
  rttMs?: number
  inFlight: number
  tags: string[]
  agents: Array<{ id: string, tags: string[] }>
  models: Array<{ id: string }>
}

export interface Candidate {
  nodeId: string
  peerId: string
  /** The agent that matched, when the target named or tagged an agent. */
  agentId?: string
  reach: Reach
  rttMs?: number
  inFlight: number
}

export const TAGS_PREFIX = 'tags:'
export const MODEL_PREFIX = 'clawmatrix/'

export function resolveTarget (target: string, nodes: RoutableNode[]): Candidate[] {
  const trimmed = target.trim()
  if (trimmed.startsWith(TAGS_PREFIX)) {
    const wanted = trimmed.slice(TAGS_PREFIX.length).split(',').map(t => t.trim()).filter(Boolean)
    if (wanted.length === 0) throw new UnknownTargetError('target', target, 'name at least one tag, e.g. tags:gpu')
    const matches = nodes.flatMap(node => {
      if (wanted.every(tag => node.tags.includes(tag))) return [candidate(node)]
      // Agent tags count together with the tags of the node that hosts the agent.
      return node.agents
        .filter(agent => wanted.every(tag => node.tags.includes(tag) || agent.tags.includes(tag)))
        .map(agent => candidate(node, agent.id))
    })
    if (matches.length === 0) throw new UnknownTargetError('target', target, offers(nodes))
    return orderCandidates(matches)
  }
  const byAgent = nodes.flatMap(node => node.agents.filter(a => a.id === trimmed).map(a => candidate(node, a.id)))
  if (byAgent.length > 0) return orderCandidates(byAgent)
  const byNode = nodes.filter(node => node.nodeId === trimmed).map(node => candidate(node))
  if (byNode.length > 0) return orderCandidates(byNode)
  throw new UnknownTargetError('target', target, offers(nodes))
}

/** Nodes hosting a model, best first; accepts `id` or `clawmatrix/id`. */
export function resolveModel (model: string, nodes: RoutableNode[]): Candidate[] {
  const id = model.startsWith(MODEL_PREFIX) ? model.slice(MODEL_PREFIX.length) : model
  const matches = nodes.filter(node => node.models.some(m => m.id === id)).map(node => candidate(node))
  if (matches.length === 0) {
    const models = unique(nodes.flatMap(n => n.models.map(m => m.id)))
    throw new UnknownTargetError('model', model, models.length > 0 ? `the cluster offers ${models.join(', ')}` : 'the cluster offers no models')
  }
  return orderCandidates(matches)
}

const REACH_RANK: Record<Reach, number> = { self: 0, direct: 1, relayed: 2, unreachable: 3 }

/**
 * Reachable before unreachable, this node, then direct before relayed; then
 * lower round-trip time, where times within the same half-octave count as
 * equal and the one with fewer requests in flight goes first; node id last,
 * so the order is stable.
 */
export function orderCandidates (candidates: Candidate[]): Candidate[] {
  return [...candidates].sort((a, b) =>
    REACH_RANK[a.reach] - REACH_RANK[b.reach] ||
    rttBucket(a.rttMs) - rttBucket(b.rttMs) ||
    a.inFlight - b.inFlight ||
    (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity) ||
    a.nodeId.localeCompare(b.nodeId) ||
    (a.agentId ?? '').localeCompare(b.agentId ?? ''))
}

/** 1, 1.4, 2, 2.8, 4 ... ms: times in one bucket are near-equal. Unknown RTT sorts last. */
function rttBucket (rttMs: number | undefined): number {
  return rttMs == null ? Number.MAX_SAFE_INTEGER : Math.floor(2 * Math.log2(Math.max(rttMs, 1)))
}

function candidate (node: RoutableNode, agentId?: string): Candidate {
  return { nodeId: node.nodeId, peerId: node.peerId, agentId, reach: node.reach, rttMs: node.rttMs, inFlight: node.inFlight }
}

function offers (nodes: RoutableNode[]): string {
  const agents = unique(nodes.flatMap(n => n.agents.map(a => a.id)))
  const tags = unique(nodes.flatMap(n => [...n.tags, ...n.agents.flatMap(a => a.tags)]))
  return `the cluster offers agents [${agents.join(', ')}], nodes [${unique(nodes.map(n => n.nodeId)).join(', ')}], tags [${tags.join(', ')}]`
}

function unique (values: string[]): string[] {
  return [...new Set(values)].sort()
}
