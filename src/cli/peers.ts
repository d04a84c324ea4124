import { parseArgs } from 'node:util'
import { escapeLines } from '../node/escape.js'
import { DEFAULT_PROXY_PORT } from '../config/schema.js'
import { pathText } from '../services/cluster/routing.js'
import { formatDuration, table } from '../services/status-format.js'
import { getFromNode } from './work.js'
import { CommandError, UsageError } from './errors.js'
import type { PeersReport } from '../services/inspect/peers.js'

export const PEERS_USAGE = 'clawmatrix peers [--host H] [--port N] [--json]'

/** `clawmatrix peers`: the live libp2p connections of a running node, from its loopback endpoint. */
export async function peersCommand (args: string[]): Promise<void> {
  let values
  try {
    values = parseArgs({ args, options: { host: { type: 'string' }, port: { type: 'string' }, json: { type: 'boolean' } }, strict: true }).values
  } catch (err: any) {
    throw new UsageError(`cannot list peers: ${err.message}; usage: ${PEERS_USAGE}`)
  }
  const port = values.port == null ? DEFAULT_PROXY_PORT : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`cannot list peers: --port: got "${values.port}"; expected a port number from 0 to 65535`)
  const url = `http://${values.host ?? '127.0.0.1'}:${port}/clawmatrix/peers`
  const report = await getFromNode<PeersReport>(url).catch((err: Error) => { throw new CommandError(`cannot list peers: ${err.message}`) })
  process.stdout.write((values.json === true ? JSON.stringify(report, null, 2) : escapeLines(formatPeers(report))) + '\n')
}

export function formatPeers (report: PeersReport): string {
  const { connections } = report
  const lines = [`node ${report.nodeId} (${report.peerId}): ${connections.length} connection${connections.length === 1 ? '' : 's'}`, '']
  lines.push(...table(['NODE', 'DIR', 'TRANSPORT', 'PATH', 'RTT', 'AGE', 'STREAMS', 'PEER ID'], connections.map(c => [
    c.nodeId ?? '?',
    c.direction === 'inbound' ? 'in' : 'out',
    c.transport,
    pathText(c.relayed ? 'relayed' : 'direct', c.via),
    c.rttMs == null ? '-' : `${c.rttMs} ms`,
    formatDuration(c.ageMs),
    String(c.streams.length),
    c.peerId
  ])))
  if (connections.some(c => c.streams.length > 0)) {
    lines.push('', 'open streams')
    for (const c of connections) {
      if (c.streams.length === 0) continue
      const byProtocol = new Map<string, string[]>()
      for (const s of c.streams) {
        const key = s.protocol ?? '(negotiating)'
        byProtocol.set(key, [...(byProtocol.get(key) ?? []), s.direction === 'inbound' ? 'in' : 'out'])
      }
      const streams = [...byProtocol].sort(([a], [b]) => a.localeCompare(b)).map(([protocol, dirs]) => `${protocol} (${dirs.sort().join(', ')})`)
      // Two connections to one peer (both ends dialed at once) are told apart by direction.
      const twin = connections.filter(other => other.peerId === c.peerId).length > 1
      lines.push(`  ${c.nodeId ?? c.peerId}${twin ? ` (${c.direction} connection)` : ''}: ${streams.join(', ')}`)
    }
  }
  return lines.join('\n')
}
