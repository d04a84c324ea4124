/**
 * The cluster view at scale, and the relayed data path:
 *
 * 1. convergence: N nodes (two listening bootstrap nodes, the rest dial-out
 *    only, each configured with one bootstrap peer) start at once (a burst),
 *    or join at a fixed rate (`joinRate`, as a real cluster grows); the time
 *    until every node's view lists all N, and until it reaches all N, from
 *    the start and from the last node's start;
 * 2. announcement traffic per node per minute in a steady state;
 * 3. throughput of one stream over a relayed path (dial-out node -> relay
 *    -> dial-out node) beside direct paths, in the same run.
 *
 * The nodes are the real ClawmatrixNode from dist/, several per child
 * process (./lib/node-host.ts); each bootstrap node has a process of its own,
 * as a relay would have its own machine.
 */
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { importDist } from './lib/dist.js'
import { startHosts, stopHosts, type NodeHost } from './lib/hosts.js'
import { sleep, waitFor } from './lib/wait.js'
import type { ConvergenceRecord, NodeSpec, PathKind, ProcessStats, StartedNode, TrafficRecord, WarningCount } from './lib/host-api.js'
import type { BenchResult, Measurement, Variant } from './lib/report.js'

const { SECRET_ENV } = await importDist<typeof import('../src/cli/run-node.js')>('cli/run-node.js')
const { DEFAULT_HEARTBEAT_INTERVAL_MS } = await importDist<typeof import('../src/config/schema.js')>('config/schema.js')

type MeshMode = 'on-demand' | 'full'

/** A set of convergence runs of one cluster size and configuration. */
export interface Scenario {
  nodes: number
  runs: number
  /** mesh.mode of every node: `on-demand` (the default) or `full`. */
  mode: MeshMode
  /** heartbeat.intervalMs, also the announce interval; the default is 15 s. */
  intervalMs: number
  /**
   * Overrides gossipsub's IP colocation weight (peer score P6). clawmatrix
   * sets it to 0 since the fix described in docs/benchmarks.md; a negative
   * value brings the penalty back, to see what it did.
   */
  ipColocationWeight?: number
  /**
   * Dial-out nodes started per second, one at a time, round-robin over the
   * hosts; undefined = all at once (a burst, each host starting its share
   * together).
   */
  joinRate?: number
  /** A run that has not converged this long after its last node was told to start is reported as such. */
  timeoutMs: number
  /** Measure the traffic of the last run's cluster once it converged (or timed out). */
  traffic?: boolean
}

export interface ClusterBenchOptions {
  scenarios: Scenario[]
  /** Node host processes: two for the bootstrap nodes, the rest share the dial-out nodes. */
  hosts: number
  /** Idle time after convergence before the traffic window opens. */
  settleMs: number
  trafficWindowMs: number
  /** The throughput part; left out when undefined. */
  transfer?: { bytes: number, chunkBytes: number, reps: number }
  progress: (line: string) => void
}

const DEFAULT_INTERVAL = DEFAULT_HEARTBEAT_INTERVAL_MS

/** Both modes at one size, on demand first: side by side in the same run. */
function bothModes (nodes: number, runs: number, timeoutMs: number): Scenario[] {
  return (['on-demand', 'full'] as const).map(mode => ({ nodes, runs, mode, intervalMs: DEFAULT_INTERVAL, timeoutMs, traffic: true }))
}

export const CLUSTER_DEFAULTS: Omit<ClusterBenchOptions, 'progress'> = {
  scenarios: [
    ...bothModes(10, 2, 45_000),
    ...bothModes(50, 1, 90_000),
    // A full mesh of 200 (19,900 connections, most of them circuits through two relays) is out of reach
    // of one 2-core machine: at 50 it did not form within minutes. `cluster-scale` tries it.
    { nodes: 200, runs: 1, mode: 'on-demand', intervalMs: DEFAULT_INTERVAL, timeoutMs: 240_000, traffic: true }
  ],
  hosts: 10,
  settleMs: 3_000,
  trafficWindowMs: 2 * DEFAULT_INTERVAL,
  transfer: { bytes: 50_000_000, chunkBytes: 64 * 1024, reps: 3 }
}

/** Opt-in (`npm run bench -- cluster-scale`): 200 nodes in both modes, with 5-minute limits. */
export const CLUSTER_SCALE: Omit<ClusterBenchOptions, 'progress'> = {
  ...CLUSTER_DEFAULTS,
  scenarios: bothModes(200, 1, 300_000),
  transfer: undefined
}

/**
 * `npm run bench -- cluster --nodes 50,200`: on demand only, at the given
 * sizes, one run each with traffic, no throughput part; for a size too slow
 * to run beside everything else. With `joinRates` (`--join-rate 2,5`), each
 * size also joins at those rates, after the burst; `burst: false`
 * (`--no-burst`) leaves the burst out (one 200-node run per hold).
 */
export function clusterAt (sizes: number[], joinRates: number[] = [], burst = true): Omit<ClusterBenchOptions, 'progress'> {
  const at = (nodes: number, joinRate?: number): Scenario =>
    ({ nodes, runs: 1, mode: 'on-demand', intervalMs: DEFAULT_INTERVAL, joinRate, timeoutMs: Math.max(90_000, nodes * 1_200), traffic: true })
  return {
    ...CLUSTER_DEFAULTS,
    scenarios: sizes.flatMap(nodes => [...burst ? [at(nodes)] : [], ...joinRates.map(rate => at(nodes, rate))]),
    // One announce interval to settle: every node's first periodic card (due one interval after it
    // started, from a view still small) falls before the window, which is what a long-running cluster sends.
    settleMs: DEFAULT_INTERVAL,
    trafficWindowMs: 4 * DEFAULT_INTERVAL,
    transfer: undefined
  }
}

/** Enough to see that every part works; the figures mean little. */
export const CLUSTER_QUICK: Omit<ClusterBenchOptions, 'progress'> = {
  scenarios: bothModes(6, 1, 30_000),
  hosts: 4,
  settleMs: 1_000,
  trafficWindowMs: 5_000,
  transfer: { bytes: 5_000_000, chunkBytes: 64 * 1024, reps: 1 }
}

/** A host's CPU, memory and event loop over one run. */
type HostStats = { host: string, bootstrap: boolean, heapBeforeBytes: number } & ProcessStats

/** One convergence run: when it started, what every watched node reached, and how busy the processes were. */
interface Run {
  t0: number
  records: ConvergenceRecord[]
  warnings: WarningCount[]
  stats: HostStats[]
  load: number
}

/** A scenario's runs, and the traffic of its last cluster. */
interface ScenarioResult {
  scenario: Scenario
  runs: Run[]
  traffic?: { records: TrafficRecord[], converged: boolean, stats: Array<ProcessStats & { bootstrap: boolean }>, load: [number, number] }
}

export async function clusterBench (options: ClusterBenchOptions): Promise<BenchResult> {
  if (options.hosts < 3) throw new Error('the cluster bench needs at least 3 host processes')
  const env = { ...process.env, [SECRET_ENV]: randomBytes(32).toString('hex') }
  options.progress(`starting ${options.hosts} node host processes`)
  const hosts = await startHosts(options.hosts, env)
  try {
    const results: ScenarioResult[] = []
    // An unrecorded first run: the hosts' code is cold in the first one.
    options.progress('convergence: warm-up run of 5 nodes')
    await converge(hosts, { nodes: 5, runs: 1, mode: 'on-demand', intervalMs: DEFAULT_INTERVAL, timeoutMs: 30_000 })
    await stopNodes(hosts)

    for (const scenario of options.scenarios) {
      const result: ScenarioResult = { scenario, runs: [] }
      results.push(result)
      for (let i = 0; i < scenario.runs; i++) {
        options.progress(`convergence: ${describe(scenario)}, run ${i + 1} of ${scenario.runs}`)
        const run = await converge(hosts, scenario)
        result.runs.push(run)
        options.progress(summary(run, scenario))
        if (i === scenario.runs - 1 && scenario.traffic === true) {
          options.progress(`traffic: ${scenario.nodes} nodes, ${options.settleMs / 1000} s to settle, then a ${options.trafficWindowMs / 1000} s window`)
          result.traffic = { ...await measureTraffic(hosts, options), converged: complete(run) }
        }
        await stopNodes(hosts)
      }
    }
    const measurements: Measurement[] = []
    for (const size of [...new Set(options.scenarios.map(s => s.nodes))]) {
      measurements.push(...sizeMeasurements(results.filter(r => r.scenario.nodes === size), options))
    }

    if (options.transfer != null) {
      options.progress(`throughput: ${options.transfer.reps} x ${options.transfer.bytes / 1e6} MB per path`)
      measurements.push(await throughput(hosts, options.transfer))
    }

    return { name: 'cluster', title: `cluster view at ${options.scenarios.map(s => s.nodes).filter((n, i, all) => all.indexOf(n) === i).join('/')} nodes over ${options.hosts} processes, on demand vs full mesh${options.transfer == null ? '' : ', and relayed vs direct throughput'}`, measurements }
  } finally {
    await stopHosts(hosts)
  }
}

function describe (s: Scenario): string {
  return `${s.nodes} nodes, ${scenarioName(s)}, ${s.intervalMs / 1000} s interval` +
    (s.ipColocationWeight == null ? '' : `, gossipsub IP colocation weight ${s.ipColocationWeight}`)
}

function modeName (mode: MeshMode): string {
  return mode === 'full' ? 'full mesh' : 'on demand'
}

/** The mode, and how the nodes joined: what tells a size's scenarios apart in the tables. */
function scenarioName (s: Scenario): string {
  return `${modeName(s.mode)}, ${s.joinRate == null ? 'all at once' : `joining ${s.joinRate}/s`}`
}

/**
 * Starts an N-node cluster and waits until every view lists and reaches all
 * N, or the scenario's timeout after the last start. Two listening bootstrap
 * nodes start first, each in a process of its own, and find each other; then,
 * from t0, the other nodes start: dial-out only, configured with one of the
 * two bootstrap nodes (alternately), spread round-robin over the other hosts;
 * all at once, or one every 1/joinRate s.
 */
async function converge (hosts: NodeHost[], scenario: Scenario): Promise<Run> {
  const { nodes: n, intervalMs, ipColocationWeight, timeoutMs, mode, joinRate } = scenario
  const spec = (nodeId: string, listen: boolean, peers: NodeSpec['peers']): NodeSpec => ({ nodeId, listen, peers, intervalMs, expect: n, ipColocationWeight, mode })
  const [boot0, boot1, ...others] = hosts as [NodeHost, NodeHost, ...NodeHost[]]
  const [b0] = await boot0.call('start', { nodes: [spec('boot-0', true, [])] })
  const bootstraps = [{ nodeId: 'boot-0', url: b0!.ws! }]
  const [b1] = await boot1.call('start', { nodes: [spec('boot-1', true, bootstraps)] })
  bootstraps.push({ nodeId: 'boot-1', url: b1!.ws! })
  await waitFor('the two bootstrap nodes to know each other', async () =>
    (await boot1.call('viewSize', { nodeId: 'boot-1' })).reachable === 2, { timeoutMs: 10_000, intervalMs: 20 })

  const members: Array<{ host: NodeHost, spec: NodeSpec }> = []
  for (let i = 2; i < n; i++) {
    members.push({ host: others[(i - 2) % others.length]!, spec: spec(`node-${String(i).padStart(3, '0')}`, false, [bootstraps[i % 2]!]) })
  }
  const before = await Promise.all(hosts.map(async h => h.call('processStats', { reset: true })))
  const t0 = Date.now()
  if (joinRate == null) {
    // Each host starts its nodes at once; the hosts start in parallel.
    const byHost = new Map<NodeHost, NodeSpec[]>()
    for (const { host, spec } of members) byHost.set(host, [...(byHost.get(host) ?? []), spec])
    await Promise.all([...byHost].map(async ([host, nodes]) => host.call('start', { nodes }, 300_000)))
  } else {
    // One node every 1/joinRate s, on its schedule from t0 (not after the previous one's start: a slow start does not slow the rate).
    await Promise.all(members.map(async ({ host, spec }, i) => {
      await sleep(Math.max(0, t0 + i * 1000 / joinRate - Date.now()))
      await host.call('start', { nodes: [spec] }, 300_000)
    }))
  }
  // A burst's limit counts from t0, as it always did; a rolling join's from its last start.
  const from = joinRate == null ? t0 : Date.now()
  const results = await Promise.all(hosts.map(async host => host.call('waitConverged', { timeoutMs: timeoutMs - (Date.now() - from) }, timeoutMs + 60_000)))
  const stats = await Promise.all(hosts.map(async (h, i) => ({ host: h.name, bootstrap: i < 2, heapBeforeBytes: before[i]!.heapAfterGcBytes, ...await h.call('processStats', { reset: false }) })))
  return { t0, records: results.flatMap(r => r.records), warnings: results.flatMap(r => r.warnings), stats, load: loadavg()[0]! }
}

function complete (run: Run): boolean {
  return run.records.every(r => r.reachesAllAt != null)
}

/** Seconds from t0: to the last view listing all, to the last reaching all, the median node, the last node started. */
function times ({ t0, records }: Run): { knows?: number, reaches?: number, medianNode?: number, lastStarted: number, afterLastStart?: { knows: number, reaches: number } } {
  const since = (at: number): number => (at - t0) / 1000
  const reaches = records.map(r => r.reachesAllAt).filter(at => at != null).map(since).sort((a, b) => a - b)
  const knows = records.map(r => r.knowsAllAt)
  const result = {
    knows: knows.every(at => at != null) ? since(Math.max(...knows)) : undefined,
    reaches: reaches.length === records.length ? reaches[reaches.length - 1] : undefined,
    medianNode: reaches.length > records.length / 2 ? reaches[Math.ceil(records.length / 2) - 1] : undefined,
    lastStarted: since(Math.max(...records.filter(r => !r.listen).map(r => r.startedAt)))
  }
  // The issue's goal is counted from here: the last node's start() resolved.
  const afterLastStart = result.knows != null && result.reaches != null
    ? { knows: Math.max(0, result.knows - result.lastStarted), reaches: Math.max(0, result.reaches - result.lastStarted) }
    : undefined
  return { ...result, afterLastStart }
}

const MiB = 2 ** 20

/** CPU seconds and heap growth per dial-out node: each host's figure shared by the nodes it ran. */
function perNode (run: Run): { cpuS: number[], heapMiB: number[] } {
  const hosts = run.stats.filter(s => !s.bootstrap && s.nodes > 0)
  return {
    cpuS: hosts.map(s => s.cpuMs / 1000 / s.nodes),
    heapMiB: hosts.map(s => (s.heapAfterGcBytes - s.heapBeforeBytes) / MiB / s.nodes)
  }
}

/** One line per run, for the progress output and the measurement's note. */
function summary (run: Run, scenario: Scenario): string {
  const t = times(run)
  const n = scenario.nodes
  const cpu = run.stats.reduce((sum, s) => sum + s.cpuMs, 0) / 1000
  const relays = run.stats.filter(s => s.bootstrap)
  const lag = (stats: Run['stats']): string => `${Math.max(...stats.map(s => s.delayP99Ms)).toFixed(0)}/${Math.max(...stats.map(s => s.delayMaxMs)).toFixed(0)} ms`
  const reached = scenario.mode === 'full' ? 'is connected to all' : 'has a way to all'
  const outcome = t.reaches != null
    ? `every view lists all ${n} at ${t.knows!.toFixed(1)} s and ${reached} at ${t.reaches.toFixed(1)} s, ` +
      `${t.afterLastStart!.knows.toFixed(1)} and ${t.afterLastStart!.reaches.toFixed(1)} s after the last node started (at ${t.lastStarted.toFixed(1)} s)`
    : `NOT converged within ${scenario.timeoutMs / 1000} s: ${run.records.filter(r => r.knowsAllAt != null).length} of ${n} views listed all ${n} at some point, ` +
      `${run.records.filter(r => r.reachesAllAt != null).length} reached all; at the end the views listed ` +
      `${range(run.records.map(r => r.known))} and reached ${range(run.records.map(r => r.reachable))} nodes`
  const relayRecords = run.records.filter(r => r.listen)
  const dialOut = run.records.filter(r => !r.listen)
  const connections = (r: ConvergenceRecord): number => r.connections.direct + r.connections.relayed
  return `${outcome}; ${joining(run)}; cluster CPU ${cpu.toFixed(1)} s (relays ${relays.map(s => (s.cpuMs / 1000).toFixed(1)).join(' + ')} s), ` +
    `connections per relay ${relayRecords.map(connections).join(' / ')}, per dial-out node ${range(dialOut.map(connections))} (median ${median(dialOut.map(connections))}); ` +
    `relay heap ${relays.map(s => (s.heapAfterGcBytes / MiB).toFixed(0)).join(' / ')} MiB, RSS ${relays.map(s => (s.rssBytes / MiB).toFixed(0)).join(' / ')} MiB; ` +
    `event loop lag p99/max: relay processes ${lag(relays)}, others ${lag(run.stats.filter(s => !s.bootstrap))}; load ${run.load.toFixed(1)}`
}

/**
 * Where the time went before the views were complete: how long the dial-out
 * nodes took to open their first connection, and whose card completed the
 * most views (the last to arrive), with when that node connected.
 */
function joining ({ t0, records }: Run): string {
  const since = (at: number): string => ((at - t0) / 1000).toFixed(1)
  const connected = records.filter(r => !r.listen && r.connectedAt != null).map(r => r.connectedAt!).sort((a, b) => a - b)
  const last = new Map<string, number>()
  for (const r of records) if (r.lastArrival != null) last.set(r.lastArrival.nodeId, (last.get(r.lastArrival.nodeId) ?? 0) + 1)
  const [lastNode, views] = [...last].sort((a, b) => b[1] - a[1])[0] ?? []
  const lastConnected = records.find(r => r.nodeId === lastNode)?.connectedAt
  return `first connection of a dial-out node p50 ${connected.length === 0 ? '-' : since(median(connected))} s, last ${connected.length === 0 ? '-' : since(connected[connected.length - 1]!)} s` +
    (lastNode == null ? '' : `; the last card to arrive was ${lastNode}'s in ${views} views (it connected at ${lastConnected == null ? '-' : `${since(lastConnected)} s`})`)
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.ceil(sorted.length / 2) - 1] ?? Number.NaN
}

function range (values: number[]): string {
  const min = Math.min(...values)
  const max = Math.max(...values)
  return min === max ? String(min) : `${min}-${max}`
}

/** Every figure of one cluster size, the modes side by side as variants of each table. */
function sizeMeasurements (results: ScenarioResult[], options: ClusterBenchOptions): Measurement[] {
  const n = results[0]!.scenario.nodes
  const label = (r: ScenarioResult, what: string): string => `${scenarioName(r.scenario)}: ${what}`
  const last = (r: ScenarioResult): Run => r.runs[r.runs.length - 1]!
  const since = (run: Run, at: number): number => (at - run.t0) / 1000
  const connections = (c: ConvergenceRecord['connections']): number => c.direct + c.relayed
  const warnings = new Map<string, number>()
  for (const { first, count } of results.flatMap(r => r.runs.flatMap(run => run.warnings))) {
    const kind = first.replace(/^[^:]+: /, '').replace(/12D3KooW\w+/g, '…').replace(/\b(node|boot)-\d+\b/g, '…').replace(/\d+/g, 'N')
    warnings.set(kind, (warnings.get(kind) ?? 0) + count)
  }
  const measurements: Measurement[] = [
    {
      what: `${n} nodes (2 listening bootstrap/relay nodes + ${n - 2} dial-out only): seconds after the dial-out nodes began to start (and after the last one started), one sample per node`,
      unit: 's',
      variants: results.flatMap(r => {
        const runs = r.runs
        return [
          { name: label(r, 'node lists all N'), samples: runs.flatMap(run => run.records.flatMap(c => c.knowsAllAt == null ? [] : [since(run, c.knowsAllAt)])) },
          { name: label(r, r.scenario.mode === 'full' ? 'node connected to all' : 'node has a way to all'), samples: runs.flatMap(run => run.records.flatMap(c => c.reachesAllAt == null ? [] : [since(run, c.reachesAllAt)])) },
          { name: label(r, 'last dial-out node started'), samples: runs.map(run => times(run).lastStarted) },
          { name: label(r, 'AFTER THE LAST START: last view lists all N'), samples: runs.flatMap(run => { const a = times(run).afterLastStart; return a == null ? [] : [a.knows] }) },
          { name: label(r, r.scenario.mode === 'full' ? 'AFTER THE LAST START: last view connected to all' : 'AFTER THE LAST START: last view has a way to all'), samples: runs.flatMap(run => { const a = times(run).afterLastStart; return a == null ? [] : [a.reaches] }) }
        ]
      }).filter(v => v.samples.length > 0),
      note: `max = the last view; n below ${n} x runs = views that never got there within the limit; ${Math.min(n, options.hosts)} processes; ` +
        '"a way to all" = every card listed with its own address or a circuit through a relay it reserved on (on demand no connection is needed until there is work)\n   ' +
        results.flatMap(r => r.runs.map((run, i) => `${describe(r.scenario)}, run ${i + 1}: ${summary(run, r.scenario)}`)).join('\n   ') +
        [...warnings].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([kind, count]) => `\n   ${count} warnings on all nodes together: ${kind}`).join('')
    },
    {
      what: `${n} nodes: open connections per node once the views converged (or at the limit)`,
      unit: 'count',
      variants: results.flatMap(r => [
        { name: label(r, 'dial-out node'), samples: last(r).records.filter(c => !c.listen).map(c => connections(c.connections)) },
        { name: label(r, 'dial-out node, relayed'), samples: last(r).records.filter(c => !c.listen).map(c => c.connections.relayed) },
        { name: label(r, 'relay (bootstrap node)'), samples: last(r).records.filter(c => c.listen).map(c => connections(c.connections)) }
      ]),
      note: 'direct + relayed; a relay\'s circuits ride on its direct connections to both ends, so they are not counted again'
    },
    {
      what: `${n} nodes: CPU seconds from the start of the dial-out nodes to convergence (or the limit)`,
      unit: 's',
      variants: results.flatMap(r => [
        { name: label(r, 'per dial-out node'), samples: r.runs.flatMap(run => perNode(run).cpuS) },
        { name: label(r, 'relay process'), samples: r.runs.flatMap(run => run.stats.filter(s => s.bootstrap).map(s => s.cpuMs / 1000)) }
      ]),
      note: 'per dial-out node = its host process\'s CPU over the nodes it ran (one sample per host and run); a relay process runs one node'
    },
    {
      what: `${n} nodes: memory after a full GC`,
      unit: 'MiB',
      variants: results.flatMap(r => [
        { name: label(r, 'heap per dial-out node'), samples: r.runs.flatMap(run => perNode(run).heapMiB) },
        { name: label(r, 'relay process heap'), samples: r.runs.flatMap(run => run.stats.filter(s => s.bootstrap).map(s => s.heapAfterGcBytes / MiB)) },
        { name: label(r, 'relay process RSS'), samples: r.runs.flatMap(run => run.stats.filter(s => s.bootstrap).map(s => s.rssBytes / MiB)) }
      ]),
      note: 'per dial-out node = growth of its host\'s heap from before the nodes started, over the nodes it ran'
    },
    {
      what: `${n} nodes: event loop lag p99 (how late a 20 ms timer fired), one sample per process and run`,
      unit: 'ms',
      variants: results.flatMap(r => [
        { name: label(r, 'relay processes'), samples: r.runs.flatMap(run => run.stats.filter(s => s.bootstrap).map(s => s.delayP99Ms)) },
        { name: label(r, 'dial-out node processes'), samples: r.runs.flatMap(run => run.stats.filter(s => !s.bootstrap && s.nodes > 0).map(s => s.delayP99Ms)) }
      ])
    }
  ]
  const withTraffic = results.filter(r => r.traffic != null)
  if (withTraffic.length > 0) measurements.push(...trafficMeasurements(withTraffic, n, options.trafficWindowMs))
  return measurements
}

/** Lets the cluster settle, then counts every node's traffic over a fixed window. */
async function measureTraffic (hosts: NodeHost[], options: ClusterBenchOptions): Promise<Omit<NonNullable<ScenarioResult['traffic']>, 'converged'>> {
  await sleep(options.settleMs)
  const loadBefore = loadavg()[0]!
  await Promise.all(hosts.map(async h => h.call('processStats', { reset: true })))
  await Promise.all(hosts.map(async h => h.call('resetTraffic', {})))
  await sleep(options.trafficWindowMs)
  const records = (await Promise.all(hosts.map(async h => h.call('readTraffic', {})))).flat()
  // CPU over the window (read before the full GC that the memory figures take).
  const stats = await Promise.all(hosts.map(async (h, i) => ({ ...await h.call('processStats', { reset: false }), bootstrap: i < 2 })))
  return { records, stats, load: [loadBefore, loadavg()[0]!] }
}

const GOSSIPSUB = /^\/(meshsub|floodsub)\//

/** Card traffic in a steady state, the modes side by side. */
function trafficMeasurements (results: ScenarioResult[], n: number, windowMs: number): Measurement[] {
  const perMinute = (r: TrafficRecord, value: number): number => value * 60_000 / r.ms
  const kib = (bytes: number): number => bytes / 1024
  const gossip = (r: TrafficRecord): { sent: number, received: number } => Object.entries(r.protocols)
    .filter(([protocol]) => GOSSIPSUB.test(protocol))
    .reduce((sum, [, c]) => ({ sent: sum.sent + c.sent, received: sum.received + c.received }), { sent: 0, received: 0 })
  const label = (r: ScenarioResult, what: string): string =>
    `${scenarioName(r.scenario)}${r.traffic!.converged ? '' : ' (NOT CONVERGED)'}: ${what}`
  const byRole = (what: string, value: (t: TrafficRecord) => number): Variant[] => results.flatMap(r => [
    { name: label(r, `${what}, dial-out node`), samples: r.traffic!.records.filter(t => !t.listen).map(value) },
    { name: label(r, `${what}, relay`), samples: r.traffic!.records.filter(t => t.listen).map(value) }
  ])
  const window = `${windowMs / 1000} s window after the cluster settled, ${results[0]!.scenario.intervalMs / 1000} s announce interval, one sample per node`
  const amplification = results.map(r => {
    const received = r.traffic!.records.reduce((s, t) => s + gossip(t).received, 0)
    const delivered = r.traffic!.records.reduce((s, t) => s + t.deliveredBytes, 0)
    return `${scenarioName(r.scenario)} ${delivered > 0 ? (received / delivered).toFixed(1) : 'n/a'}`
  }).join(', ')
  const churn = results.map(r => {
    const records = r.traffic!.records
    return `${scenarioName(r.scenario)}: opened p50 ${median(records.map(t => perMinute(t, t.churn.opened))).toFixed(1)} ` +
      `(relayed ${median(records.map(t => perMinute(t, t.churn.relayedOpened))).toFixed(1)}), closed ${median(records.map(t => perMinute(t, t.churn.closed))).toFixed(1)}`
  }).join('; ')
  return [
    {
      what: `${n} nodes: announcements per node per minute`,
      unit: 'msg/min',
      variants: results.flatMap(r => [
        { name: label(r, 'published'), samples: r.traffic!.records.map(t => perMinute(t, t.published)) },
        { name: label(r, 'received (each message once)'), samples: r.traffic!.records.map(t => perMinute(t, t.delivered)) }
      ]),
      note: `${window}; connections per node per minute in the window: ${churn}`
    },
    {
      what: `${n} nodes: announcement size`,
      unit: 'bytes',
      variants: results.map(r => ({ name: label(r, 'mean card payload received by a node'), samples: r.traffic!.records.filter(t => t.delivered > 0).map(t => t.deliveredBytes / t.delivered) }))
        .filter(v => v.samples.length > 0),
      note: 'JSON card incl. links; the gossipsub envelope (signature, key, seqno, topic) adds ~150 bytes'
    },
    {
      what: `${n} nodes: card traffic per node per minute, gossipsub stream payload sent + received`,
      unit: 'KiB/min',
      variants: byRole('gossipsub', t => kib(perMinute(t, gossip(t).sent + gossip(t).received))).filter(v => v.samples.length > 0),
      note: `${window}; the one topic is the announcement topic; gossipsub bytes received per byte of announcement delivered: ${amplification} (fan-out, duplicates, control)`
    },
    {
      what: `${n} nodes: CPU in the steady state (the traffic window), ms per second (1000 = one core busy)`,
      unit: 'ms/s',
      variants: results.flatMap(r => {
        const seconds = windowMs / 1000
        const members = r.traffic!.stats.filter(s => !s.bootstrap && s.nodes > 0)
        return [
          { name: label(r, 'relay process'), samples: r.traffic!.stats.filter(s => s.bootstrap).map(s => s.cpuMs / seconds) },
          { name: label(r, 'per dial-out node (host CPU over its nodes)'), samples: members.map(s => s.cpuMs / seconds / s.nodes) }
        ]
      }),
      note: `${window}; load average at the start and end of the window: ${results.map(r => `${scenarioName(r.scenario)} ${r.traffic!.load.map(l => l.toFixed(1)).join(' -> ')}`).join(', ')}`
    },
    {
      what: `${n} nodes: memory at the end of the steady state`,
      unit: 'MiB',
      variants: results.flatMap(r => [
        { name: label(r, 'relay process RSS'), samples: r.traffic!.stats.filter(s => s.bootstrap).map(s => s.rssBytes / MiB) },
        { name: label(r, 'relay process heap after GC'), samples: r.traffic!.stats.filter(s => s.bootstrap).map(s => s.heapAfterGcBytes / MiB) }
      ])
    },
    {
      what: `${n} nodes: all traffic per node per minute, bytes on direct connections sent + received`,
      unit: 'KiB/min',
      variants: byRole('wire', t => kib(perMinute(t, t.wire.sent + t.wire.received))).filter(v => v.samples.length > 0),
      note: `${window}; Noise and Yamux framing, heartbeat pings, identify, and on relays the relayed connections' bytes`
    }
  ]
}

/**
 * Three paths, alternating repetition by repetition: a dial-out node to
 * another dial-out node through a relay; the same sending node to its relay
 * (direct); and a listening pair in the same two processes (direct).
 */
async function throughput (hosts: NodeHost[], transfer: NonNullable<ClusterBenchOptions['transfer']>): Promise<Measurement> {
  const [relayHost, aHost, bHost] = hosts as [NodeHost, NodeHost, NodeHost]
  const node = (nodeId: string, listen: boolean, peers: NodeSpec['peers'], cluster: string | undefined, expect: number): NodeSpec =>
    ({ nodeId, listen, peers, intervalMs: DEFAULT_INTERVAL, cluster, expect })
  try {
    const [relay] = await relayHost.call('start', { nodes: [node('relay', true, [], undefined, 3)] })
    const viaRelay = [{ nodeId: 'relay', url: relay!.ws! }]
    // The listening pair is a cluster of its own (another secret), so neither relays for the others.
    const [, listenerA] = await aHost.call('start', { nodes: [node('private-a', false, viaRelay, undefined, 3), node('listener-a', true, [], 'pair', 2)] })
    const [b, listenerB] = await bHost.call('start', {
      nodes: [node('private-b', false, viaRelay, undefined, 3), node('listener-b', true, [{ nodeId: 'listener-a', url: listenerA!.ws! }], 'pair', 2)]
    })
    for (const host of [relayHost, aHost, bHost]) {
      const { records } = await host.call('waitConverged', { timeoutMs: 30_000 }, 40_000)
      const behind = records.find(r => r.reachesAllAt == null)
      if (behind != null) throw new Error(`throughput set-up: ${behind.nodeId} reaches ${behind.reachable} nodes only`)
    }
    await bHost.call('serveSink', { nodeId: 'private-b' })
    await bHost.call('serveSink', { nodeId: 'listener-b' })
    await relayHost.call('serveSink', { nodeId: 'relay' })

    const paths: Array<{ name: string, from: string, to: StartedNode, path: PathKind }> = [
      { name: 'direct, listening pair', from: 'listener-a', to: listenerB!, path: 'direct' },
      { name: 'direct, dial-out A -> relay', from: 'private-a', to: relay!, path: 'direct' },
      { name: 'relayed, A -> relay -> B', from: 'private-a', to: b!, path: 'relayed' }
    ]
    const samples = new Map(paths.map(p => [p.name, [] as number[]]))
    const { bytes, chunkBytes, reps } = transfer
    const timeoutMs = 120_000
    for (let rep = -1; rep < reps; rep++) {
      for (const p of rep % 2 === 0 ? paths : [...paths].reverse()) {
        // The warm-up repetition moves a tenth of the data and is not recorded.
        const size = rep < 0 ? Math.ceil(bytes / 10) : bytes
        const { ms } = await aHost.call('sendBulk', { from: p.from, to: p.to.peerId, path: p.path, bytes: size, chunkBytes, timeoutMs }, timeoutMs + 10_000)
        if (rep >= 0) samples.get(p.name)!.push(size / 1e6 / (ms / 1000))
      }
    }
    return {
      what: `throughput of one stream: ${bytes / 1e6} MB in ${chunkBytes / 1024} KiB writes, respecting back-pressure (MB = 10^6 bytes)`,
      unit: 'MB/s',
      variants: paths.map((p, i) => ({ name: p.name, samples: samples.get(p.name)!, baseline: i === 0 })),
      note: 'A and B are dial-out-only nodes, the relay, A and B each in its own process; the listening pair lives in A\'s and B\'s processes; ' +
        'timed from the first write until the receiver\'s byte count came back; relayed = a circuit relay v2 connection without limits, ' +
        'Noise end to end inside the relay\'s two connections'
    }
  } finally {
    await stopNodes(hosts)
  }
}

async function stopNodes (hosts: NodeHost[]): Promise<void> {
  await Promise.all(hosts.map(async h => h.call('stopNodes', {}, 30_000)))
}
