import { escapeControl } from '../node/escape.js'
import { pathText } from './cluster/routing.js'
import type { ClusterNode } from './cluster/cluster-view.js'
import type { NodeStatus } from './status.js'

/** One screen: this node, every node it knows and how it reaches it, live connections, configured peers. */
export function formatStatus (status: NodeStatus): string {
  const lines = [
    `node      ${status.nodeId}  (clawmatrix ${status.version}, up ${formatDuration(status.uptimeMs)})`,
    `peer id   ${status.peerId}`,
    `members   ${status.membership.mode}: ${status.membership.note}`,
    `secrets   ${(status.secrets ?? []).map((fingerprint, i) => `#${i} ${fingerprint}`).join(', ') || '-'}  (fingerprints, newest first)`,
    `listening ${status.listenAddresses.length > 0 ? status.listenAddresses.join('\n          ') : '- (dial-out only)'}`,
    '',
    `cluster (${status.cluster.length} nodes)`
  ]
  lines.push(...clusterTable(status.cluster))
  lines.push('', `connected peers (${status.peers.length})`)
  const rows = status.peers.map(p => [
    p.nodeId ?? '?',
    p.direction === 'inbound' ? 'in' : 'out',
    p.relayed ? 'relayed' : 'direct',
    p.secret == null ? '?' : `#${p.secret.index}`,
    p.rttMs == null ? '-' : `${p.rttMs} ms`,
    p.peerId,
    p.address
  ])
  lines.push(...table(['NODE', 'DIR', 'PATH', 'SECRET', 'RTT', 'PEER ID', 'ADDRESS'], rows))
  if (status.configuredPeers.length > 0) {
    lines.push('', 'configured peers')
    lines.push(...table(['NODE', 'URL', 'STATE', 'ATTEMPTS', 'LAST ERROR'], status.configuredPeers.map(p => [
      p.nodeId, p.url, p.state, String(p.attempts), p.lastError ?? '-'
    ])))
  }
  return lines.join('\n')
}

/** Every known node: how it is reached, what it offers, how busy it is. */
export function clusterTable (nodes: ClusterNode[]): string[] {
  return table(['NODE', 'REACH', 'RTT', 'AGENTS', 'MODELS', 'TAGS', 'TOOLS', 'IN FLIGHT', 'LAST SEEN', 'LAST REACHED'], nodes.map(n => [
    n.conflictsWith == null ? n.nodeId : `${n.nodeId} (${n.nameHeldBy == null ? 'CONTESTED, holds the name' : 'CONTESTED, by peer id only'})`,
    reachText(n),
    n.rttMs == null ? '-' : `${n.rttMs} ms`,
    list(n.agents.map(a => a.id)),
    list(n.models.map(m => m.id)),
    list(n.tags),
    toolPolicy(n.toolProxy),
    String(n.inFlight),
    n.self ? '-' : `${formatDuration(Date.now() - Date.parse(n.lastSeen))} ago`,
    lastReachedText(n)
  ]))
}

/** `direct`, `relayed via hub`, with `(on demand)` when no connection is open now. */
export function reachText (n: Pick<ClusterNode, 'reach' | 'via' | 'connected'>): string {
  const how = pathText(n.reach, n.via)
  return n.reach === 'self' || n.reach === 'unreachable' || n.connected ? how : `${how} (on demand)`
}

function lastReachedText (n: ClusterNode): string {
  const last = n.lastReached
  if (n.self || last == null) return '-'
  const how = pathText(last.reach, last.via)
  return n.connected ? `${how}, now` : `${how}, ${formatDuration(Date.now() - Date.parse(last.at))} ago`
}

/** `off`, `all`, or the allowed tools, with denied ones after a minus: `read,exec -write`. */
export function toolPolicy ({ enabled, allow, deny }: ClusterNode['toolProxy']): string {
  if (!enabled) return 'off'
  const allowed = allow.length === 0 || allow.includes('*') ? 'all' : allow.join(',')
  return deny.length > 0 ? `${allowed} -${deny.join(',-')}` : allowed
}

function list (values: string[]): string {
  return values.length === 0 ? '-' : values.join(',')
}

/** Cells hold what other members wrote: escaped, so a row stays one row. */
export function table (header: string[], cells: string[][]): string[] {
  if (cells.length === 0) return ['  (none)']
  const rows = cells.map(row => row.map(escapeControl))
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => '  ' + cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  return [line(header), ...rows.map(line)]
}

export function formatDuration (ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`
  return `${Math.floor(s / 3600)}h${Math.floor(s % 3600 / 60)}m`
}
