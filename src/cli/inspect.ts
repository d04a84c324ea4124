import { parseArgs } from 'node:util'
import { escapeLines } from '../node/escape.js'
import { inspectMember, type InspectReport } from '../services/inspect/inspector.js'
import { clusterTable } from '../services/status-format.js'
import { SECRET_ENV } from './run-node.js'
import { UsageError } from './errors.js'

export const INSPECT_USAGE = 'clawmatrix inspect <ws://host:port | wss://host | multiaddr> [--json] [--timeout <seconds>]'

/**
 * `clawmatrix inspect <address>`: identify, ping and the cluster view of a
 * member, through a throwaway swarm that holds the secret from
 * CLAWMATRIX_SECRET and never joins the cluster.
 */
export async function inspectCommand (args: string[]): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({ args, options: { json: { type: 'boolean' }, timeout: { type: 'string' } }, allowPositionals: true, strict: true })
  } catch (err: any) {
    throw new UsageError(`cannot inspect: ${err.message}; usage: ${INSPECT_USAGE}`)
  }
  const { values, positionals } = parsed
  if (positionals.length !== 1) throw new UsageError(`cannot inspect: name one address; usage: ${INSPECT_USAGE}`)
  const secret = process.env[SECRET_ENV]
  if (secret == null || secret === '') throw new UsageError(`cannot inspect: set the cluster secret in ${SECRET_ENV} (it is never taken from the command line)`)
  const timeoutSeconds = values.timeout == null ? 10 : Number(values.timeout)
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError(`cannot inspect: --timeout: got "${values.timeout}"; expected a number of seconds above 0`)

  const report = await inspectMember(positionals[0]!, secret, { timeoutMs: timeoutSeconds * 1000 })
  process.stdout.write((values.json === true ? JSON.stringify(report, null, 2) : escapeLines(formatInspect(report))) + '\n')
}

export function formatInspect (report: InspectReport): string {
  const { connection } = report
  const indent = '\n            '
  const lines = [
    `peer id     ${report.peerId}`,
    `agent       ${report.agentVersion ?? '-'}`,
    `connected   ${report.address}`,
    `            ${[connection.transport, connection.relayed ? 'relayed' : 'direct', connection.encryption, connection.multiplexer].filter(Boolean).join(', ')}`,
    `ping        ${report.pingMs} ms`,
    `listening   ${report.listenAddresses.length > 0 ? report.listenAddresses.join(indent) : '- (dial-out only)'}`,
    `protocols   ${report.protocols.join(indent)}`,
    ''
  ]
  if (report.view == null) {
    lines.push(`cluster view: not available (${report.viewError ?? 'unknown reason'})`)
  } else {
    lines.push(`cluster as ${report.view.nodeId} sees it (${report.view.nodes.length} nodes)`)
    lines.push(...clusterTable(report.view.nodes))
  }
  return lines.join('\n')
}
