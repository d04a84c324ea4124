import type { NodeStatus } from './status.js'

/** One screen: this node, every node it knows and how it reaches it, live connections, configured peers. */
export function formatStatus (status: NodeStatus): string {
  const lines = [
    `node      ${status.nodeId}  (clawmatrix ${status.version}, up ${formatDuration(status.uptimeMs)})`,
    `peer id   ${status.peerId}`,
    `listening ${status.listenAddresses.length > 0 ? status.listenAddresses.join('\n          ') : '- (dial-out only)'}`,
    '',
    `cluster (${status.cluster.length} nodes)`
  ]
  lines.push(...table(['NODE', 'REACH', 'RTT', 'AGENTS', 'MODELS', 'TAGS', 'TOOLS', 'IN FLIGHT', 'LAST SEEN'], status.cluster.map(n => [
    n.conflictsWith == null ? n.nodeId : `${n.nodeId} (CLASH)`,
    n.reach === 'relayed' ? `relayed via ${n.via?.nodeId ?? n.via?.peerId ?? '?'}` : n.reach,
    n.rttMs == null ? '-' : `${n.rttMs} ms`,
    list(n.agents.map(a => a.id)),
    list(n.models.map(m => m.id)),
    list(n.tags),
    n.toolProxy.enabled ? (n.toolProxy.allow.length === 0 || n.toolProxy.allow.includes('*') ? 'all' : n.toolProxy.allow.join(',')) + (n.toolProxy.deny.length > 0 ? ` -${n.toolProxy.deny.join(',-')}` : '') : 'off',
    String(n.inFlight),
    n.self ? '-' : `${formatDuration(Date.now() - Date.parse(n.lastSeen))} ago`
  ])))
  lines.push('', `connected peers (${status.peers.length})`)
  const rows = status.peers.map(p => [
    p.nodeId ?? '?',
    p.direction === 'inbound' ? 'in' : 'out',
    p.relayed ? 'relayed' : 'direct',
    p.rttMs == null ? '-' : `${p.rttMs} ms`,
    p.peerId,
    p.address
  ])
  lines.push(...table(['NODE', 'DIR', 'PATH', 'RTT', 'PEER ID', 'ADDRESS'], rows))
  if (status.configuredPeers.length > 0) {
    lines.push('', 'configured peers')
    lines.push(...table(['NODE', 'URL', 'STATE', 'ATTEMPTS', 'LAST ERROR'], status.configuredPeers.map(p => [
      p.nodeId, p.url, p.state, String(p.attempts), p.lastError ?? '-'
    ])))
  }
  return lines.join('\n')
}

function list (values: string[]): string {
  return values.length === 0 ? '-' : values.join(',')
}

export function table (header: string[], rows: string[][]): string[] {
  if (rows.length === 0) return ['  (none)']
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
