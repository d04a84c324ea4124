/**
 * The time from `revoke` until the last other node refuses the revoked peer,
 * beside the time a card takes over the same gossip mesh (the baseline),
 * interleaved, several times per cluster, at each cluster size in one run.
 *
 * Every node is a real ClawmatrixNode of a managed cluster, joined from its
 * own invite (its own key and certificate), spread over node host processes
 * (./lib/hosts.ts): a listening hub alone in one process, the members dialing
 * it round-robin over the others, on demand. Each host records the moment
 * each of its nodes meets the condition, so IPC is not in the figures.
 */
import { loadavg } from 'node:os'
import { assertNoOrphans, startHosts, stopHosts, type NodeHost } from './lib/hosts.js'
import { sleep } from './lib/wait.js'
import type { NodeSpec, ProcessStats, WatchCondition, WatchRecord } from './lib/host-api.js'
import type { Measurement } from './lib/report.js'
import { importDist } from './lib/dist.js'
import type { Authority } from '../src/membership/index.js'

const { SECRET_ENV } = await importDist<typeof import('../src/cli/run-node.js')>('cli/run-node.js')

export interface RevocationOptions {
  /** Cluster sizes, one cluster each, in this order. */
  sizes: number[]
  /** Revocations per cluster (each of another node), each after a card as the baseline. */
  revocations: number
  /** Processes the members share (fewer for a cluster of fewer members); the hub has one more of its own. */
  memberHosts: number
  progress: (line: string) => void
}

/**
 * heartbeat.intervalMs of every node (also its announce interval); the issue asks for a revoke within one.
 * Not 1 s: fifty nodes announcing every second through one hub kept this 2-core machine's event loops
 * seconds late, and the views never all listed each other. Gossip carries a revocation at once either way.
 */
const INTERVAL_MS = 5_000
const MAX_MISSED = 6
/** Members started at once: fifty handshakes at once on a loaded machine time out and back off. */
const START_BATCH = 10
const CONVERGE_TIMEOUT_MS = 180_000
const EVENT_TIMEOUT_MS = 60_000

/** The members one host process runs. */
interface Placed {
  host: NodeHost
  nodes: NodeSpec[]
}

export async function revocationTime (options: RevocationOptions, authority: Authority): Promise<Measurement[]> {
  const measurements: Measurement[] = []
  for (const size of options.sizes) {
    const memberHostCount = Math.min(options.memberHosts, size - 1)
    options.progress(`revocation: ${size} nodes over ${memberHostCount + 1} processes, ${options.revocations} revocations`)
    const load = [loadavg()[0]!]
    // No secret in the environment: every node takes its own from its invite.
    const env = { ...process.env }
    delete env[SECRET_ENV]
    const hosts = await startHosts(memberHostCount + 1, env, `revoke-${size}`)
    try {
      const [hubHost, ...memberHosts] = hosts as [NodeHost, ...NodeHost[]]
      const spec = async (nodeId: string, listen: boolean, peers: NodeSpec['peers']): Promise<NodeSpec> => {
        const { token } = await authority.invite({ nodeId, newKey: true })
        return { nodeId, invite: token, listen, peers, intervalMs: INTERVAL_MS, maxMissed: MAX_MISSED }
      }
      const [hub] = await hubHost.call('start', { nodes: [await spec('hub', true, [])] })
      const peers = [{ nodeId: 'hub', url: hub!.ws! }]
      const placed: Placed[] = memberHosts.map(host => ({ host, nodes: [] }))
      for (let i = 0; i < size - 1; i++) placed[i % placed.length]!.nodes.push(await spec(`n${i}`, false, peers))
      const started = new Map([['hub', { host: hubHost, ...hub! }]])
      for (let from = 0; from < size - 1; from += START_BATCH) {
        const batch = new Set(Array.from({ length: Math.min(START_BATCH, size - 1 - from) }, (_, j) => `n${from + j}`))
        await Promise.all(placed.map(async ({ host, nodes }) => {
          const mine = nodes.filter(n => batch.has(n.nodeId))
          if (mine.length === 0) return
          for (const node of await host.call('start', { nodes: mine })) started.set(node.nodeId, { host, ...node })
        }))
      }
      const converged = await waitKnown(started, size, options.progress)
      if (converged.ms == null) {
        // Measured anyway, and said: a node that lost the hub learns a revocation when it reconnects.
        const warnings = (await Promise.all(hosts.map(async host => (await host.call('waitConverged', { timeoutMs: 0 })).warnings))).flat()
        options.progress(`${size} nodes: views listed ${converged.known} after ${CONVERGE_TIMEOUT_MS / 1000} s; measuring anyway; the nodes warned: ${warnings.map(w => `${w.count} x ${w.first}`).join('; ') || 'nothing'}`)
      }
      load.push(loadavg()[0]!)

      // The revocation goes to n0's local endpoint, as `clawmatrix revoke --port` sends it; the revoked
      // nodes are the highest numbered. Before each, n0 publishes a card on the same mesh: the baseline.
      const sender = started.get('n0')!
      const revoked: string[] = []
      const card: number[] = []
      const revoke: number[] = []
      /** Events some node did not see within EVENT_TIMEOUT_MS: said in the note, not counted as samples. */
      const incomplete: string[] = []
      const keep = (samples: number[], what: string) => ({ ms, missing, of }: Timed): void => {
        if (missing.length === 0) samples.push(ms)
        else incomplete.push(`${what}: ${missing.length} of ${of} nodes not within ${EVENT_TIMEOUT_MS / 1000} s`)
      }
      for (const host of hosts) await host.call('processStats', { reset: true })
      for (let k = 0; k < options.revocations; k++) {
        keep(card, `card ${k + 1}`)(await timeUntilAll(hosts, { kind: 'card-newer', peerId: sender.peerId }, revoked, async () => {
          await sender.host.call('publishCard', { nodeId: 'n0' })
        }))
        const target = started.get(`n${size - 2 - k}`)!
        keep(revoke, `revoke ${k + 1}`)(await timeUntilAll(hosts, { kind: 'refuses', peerId: target.peerId }, revoked, async () => {
          const signed = await authority.revoke(target.nodeId)
          const res = await fetch(`${sender.http}/clawmatrix/revocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ revocation: signed.revocation }) })
          if (!res.ok) throw new Error(`n0 refused the revocation: HTTP ${res.status} ${await res.text()}`)
        }))
        revoked.push(target.nodeId)
      }
      const stats = await Promise.all(hosts.map(async host => ({ host: host.name, ...await host.call('processStats', { reset: false }) })))
      load.push(loadavg()[0]!)
      // Said at once: a larger cluster that then fails must not take these numbers with it.
      options.progress(`${size} nodes: card ${card.map(ms => ms.toFixed(0)).join(', ')} ms; revoke ${revoke.map(ms => ms.toFixed(0)).join(', ')} ms; ` +
        `${incomplete.length === 0 ? '' : `incomplete: ${incomplete.join('; ')}; `}load ${load.map(l => l.toFixed(1)).join(' -> ')}`)
      measurements.push({
        what: `${size} nodes: a card, and a revocation, until the last other node has it [per event]`,
        unit: 'ms',
        variants: [
          { name: 'card published by n0 -> every other node holds it (baseline)', samples: card, baseline: true },
          { name: 'revoke (sign + POST to n0) -> every other node refuses the peer, has dropped its card, no connection left', samples: revoke }
        ],
        note: `${size} managed nodes (an invite each) in ${hosts.length} processes (hub alone, members round-robin over ${memberHosts.length}), ` +
          `on demand, heartbeat ${INTERVAL_MS} ms; ${converged.ms == null ? `views listed only ${converged.known} nodes after ${CONVERGE_TIMEOUT_MS / 1000} s` : `all listed each other ${(converged.ms / 1000).toFixed(1)} s after the last start`}; ` +
          `${incomplete.length === 0 ? '' : `not counted: ${incomplete.join('; ')}; `}` +
          `event loop lag p99 per process ${lagSummary(stats)}; load average ${load.map(l => l.toFixed(1)).join(' -> ')}; interleaved`
      })
    } finally {
      await stopHosts(hosts)
      assertNoOrphans(hosts)
    }
  }
  return measurements
}

/** The time from just before an act until the last node met the condition; the nodes that did not, of how many. */
interface Timed {
  ms: number
  missing: string[]
  of: number
}

/**
 * Arms a watch of `condition` on every host (nodes in `exclude` left out),
 * runs `act`, and times it until every node met the condition, as each host
 * saw it, or EVENT_TIMEOUT_MS.
 */
async function timeUntilAll (hosts: NodeHost[], condition: WatchCondition, exclude: string[], act: () => Promise<void>): Promise<Timed> {
  const id = `${condition.kind}-${condition.peerId}-${Date.now()}`
  await Promise.all(hosts.map(async host => host.call('armWatch', { id, condition, exclude })))
  const t0 = Date.now()
  let failure: unknown
  await act().catch((err: unknown) => { failure = err })
  // Each host waits on its own nodes; the watch is collected even when `act` failed, so none stays armed.
  const timeoutMs = failure == null ? EVENT_TIMEOUT_MS : 0
  const records: WatchRecord[] = (await Promise.all(hosts.map(async host => host.call('waitWatch', { id, timeoutMs })))).flat()
  if (failure != null) throw failure
  const met = records.flatMap(r => r.metAt == null ? [] : [r.metAt])
  return { ms: Math.max(t0, ...met) - t0, missing: records.filter(r => r.metAt == null).map(r => r.nodeId), of: records.length }
}

/**
 * Waits until every node's view lists `size` nodes, or CONVERGE_TIMEOUT_MS;
 * returns how long that took (undefined: it did not happen) and the range of
 * view sizes at the end.
 */
async function waitKnown (started: Map<string, { host: NodeHost, nodeId: string }>, size: number, progress: (line: string) => void): Promise<{ ms?: number, known: string }> {
  const t0 = Date.now()
  let lastSaid = t0
  for (;;) {
    const known = await Promise.all([...started.values()].map(async ({ host, nodeId }) => (await host.call('viewSize', { nodeId })).known))
    const range = `${Math.min(...known)}-${Math.max(...known)}`
    if (known.every(k => k >= size)) return { ms: Date.now() - t0, known: range }
    if (Date.now() - t0 > CONVERGE_TIMEOUT_MS) return { known: range }
    if (Date.now() - lastSaid > 15_000) {
      progress(`${size} nodes: views list ${Math.min(...known)}-${Math.max(...known)} so far`)
      lastSaid = Date.now()
    }
    await sleep(500)
  }
}

function lagSummary (stats: Array<{ host: string } & ProcessStats>): string {
  return stats.map(s => `${s.host.replace(/^revoke-\d+-/, '')}: ${s.delayP99Ms.toFixed(0)} ms`).join(', ')
}
