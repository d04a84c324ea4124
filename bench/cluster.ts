/**
 * The cluster view at scale, and the relayed data path:
 *
 * 1. convergence: N nodes (two listening bootstrap nodes, the rest dial-out
 *    only, each configured with one bootstrap peer) start at once; the time
 *    until every node's view lists all N, and until it reaches all N;
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

/** A set of convergence runs of one cluster size and configuration. */
export interface Scenario {
  nodes: number
  runs: number
  /** heartbeat.intervalMs, also the announce interval; the default is 15 s. */
  intervalMs: number
  /**
   * Overrides gossipsub's IP colocation weight (peer score P6): 0 turns off
   * the penalty that, on loopback or behind one relay, makes peers graylist
   * each other once more than ~14 of them share an IP (see docs/benchmarks.md).
   */
  ipColocationWeight?: number
  /** A run that has not converged by then is reported as such. */
  timeoutMs: number
  /** Measure the traffic of the last run's cluster once it converged. */
  traffic?: boolean
}

export interface ClusterBenchOptions {
  scenarios: Scenario[]
  /** Node host processes: two for the bootstrap nodes, the rest share the dial-out nodes. */
  hosts: number
  /** Idle time after convergence before the traffic window opens. */
  settleMs: number
  trafficWindowMs: number
  transfer: { bytes: number, chunkBytes: number, reps: number }
  progress: (line: string) => void
}

const DEFAULT_INTERVAL = DEFAULT_HEARTBEAT_INTERVAL_MS
const NO_IP_COLOCATION = 0

export const CLUSTER_DEFAULTS: Omit<ClusterBenchOptions, 'progress'> = {
  scenarios: [
    { nodes: 10, runs: 3, intervalMs: DEFAULT_INTERVAL, timeoutMs: 45_000, traffic: true },
    // As shipped, 25 nodes graylist each other within seconds: 20 s show it (or, once fixed, that it converges).
    { nodes: 25, runs: 1, intervalMs: DEFAULT_INTERVAL, timeoutMs: 20_000 },
    { nodes: 25, runs: 1, intervalMs: DEFAULT_INTERVAL, ipColocationWeight: NO_IP_COLOCATION, timeoutMs: 40_000, traffic: true },
    { nodes: 50, runs: 1, intervalMs: DEFAULT_INTERVAL, ipColocationWeight: NO_IP_COLOCATION, timeoutMs: 40_000 }
  ],
  hosts: 10,
  settleMs: 3_000,
  trafficWindowMs: 2 * DEFAULT_INTERVAL,
  transfer: { bytes: 50_000_000, chunkBytes: 64 * 1024, reps: 3 }
}

/**
 * Opt-in (`npm run bench -- cluster-scale`, ~10 min): 25 and 50 nodes with
 * longer waits, each with the default and a short (1 s) announce interval,
 * and more throughput repetitions.
 */
export const CLUSTER_SCALE: Omit<ClusterBenchOptions, 'progress'> = {
  ...CLUSTER_DEFAULTS,
  scenarios: [25, 50].flatMap(nodes => [
    { nodes, runs: 1, intervalMs: DEFAULT_INTERVAL, ipColocationWeight: NO_IP_COLOCATION, timeoutMs: 120_000 },
    { nodes, runs: 1, intervalMs: 1_000, ipColocationWeight: NO_IP_COLOCATION, timeoutMs: 120_000 }
  ]),
  transfer: { bytes: 50_000_000, chunkBytes: 64 * 1024, reps: 7 }
}

/** Enough to see that every part works; the figures mean little. */
export const CLUSTER_QUICK: Omit<ClusterBenchOptions, 'progress'> = {
  scenarios: [
    { nodes: 6, runs: 1, intervalMs: DEFAULT_INTERVAL, timeoutMs: 30_000, traffic: true },
    { nodes: 6, runs: 1, intervalMs: 1_000, ipColocationWeight: NO_IP_COLOCATION, timeoutMs: 30_000 }
  ],
  hosts: 4,
  settleMs: 1_000,
  trafficWindowMs: 5_000,
  transfer: { bytes: 5_000_000, chunkBytes: 64 * 1024, reps: 1 }
}

/** One convergence run: when it started, what every watched node reached, and how busy the processes were. */
interface Run {
  t0: number
  records: ConvergenceRecord[]
  warnings: WarningCount[]
  stats: Array<{ host: string, bootstrap: boolean } & ProcessStats>
  load: number
}

export async function clusterBench (options: ClusterBenchOptions): Promise<BenchResult> {
  if (options.hosts < 3) throw new Error('the cluster bench needs at least 3 host processes')
  const env = { ...process.env, [SECRET_ENV]: randomBytes(32).toString('hex') }
  options.progress(`starting ${options.hosts} node host processes`)
  const hosts = await startHosts(options.hosts, env)
  try {
    const measurements: Measurement[] = []
    const traffic: Measurement[] = []
    // An unrecorded first run: the hosts' code is cold in the first one.
    options.progress('convergence: warm-up run of 5 nodes')
    await converge(hosts, { nodes: 5, runs: 1, intervalMs: DEFAULT_INTERVAL, timeoutMs: 30_000 })
    await stopNodes(hosts)

    for (const scenario of options.scenarios) {
      const runs: Run[] = []
      for (let i = 0; i < scenario.runs; i++) {
        options.progress(`convergence: ${describe(scenario)}, run ${i + 1} of ${scenario.runs}`)
        const run = await converge(hosts, scenario)
        runs.push(run)
        options.progress(summary(run, scenario))
        if (i === scenario.runs - 1 && scenario.traffic === true) {
          options.progress(`traffic: ${scenario.nodes} nodes, ${options.settleMs / 1000} s to settle, then a ${options.trafficWindowMs / 1000} s window`)
          traffic.push(...trafficMeasurements(await measureTraffic(hosts, options), scenario, options.trafficWindowMs, complete(run)))
        }
        await stopNodes(hosts)
      }
      measurements.push(convergenceMeasurement(scenario, runs, options.hosts))
    }
    measurements.push(...traffic)

    options.progress(`throughput: ${options.transfer.reps} x ${options.transfer.bytes / 1e6} MB per path`)
    measurements.push(await throughput(hosts, options))

    return { name: 'cluster', title: `cluster view at ${options.scenarios.map(s => s.nodes).filter((n, i, all) => all.indexOf(n) === i).join('/')} nodes over ${options.hosts} processes, and relayed vs direct throughput`, measurements }
  } finally {
    await stopHosts(hosts)
  }
}

function describe (s: Scenario): string {
  return `${s.nodes} nodes, ${s.intervalMs / 1000} s interval` +
    (s.ipColocationWeight == null ? ', as shipped' : `, gossipsub IP colocation weight ${s.ipColocationWeight}`)
}

/**
 * Starts an N-node cluster and waits until every view lists and reaches all
 * N, or the scenario's timeout. Two listening bootstrap nodes start first,
 * each in a process of its own, and find each other; then, at t0, every
 * other node starts at once: dial-out only, configured with one of the two
 * bootstrap nodes (alternately), spread round-robin over the other hosts.
 */
async function converge (hosts: NodeHost[], scenario: Scenario): Promise<Run> {
  const { nodes: n, intervalMs, ipColocationWeight, timeoutMs } = scenario
  const spec = (nodeId: string, listen: boolean, peers: NodeSpec['peers']): NodeSpec => ({ nodeId, listen, peers, intervalMs, expect: n, ipColocationWeight })
  const [boot0, boot1, ...others] = hosts as [NodeHost, NodeHost, ...NodeHost[]]
  const [b0] = await boot0.call('start', { nodes: [spec('boot-0', true, [])] })
  const bootstraps = [{ nodeId: 'boot-0', url: b0!.ws! }]
  const [b1] = await boot1.call('start', { nodes: [spec('boot-1', true, bootstraps)] })
  bootstraps.push({ nodeId: 'boot-1', url: b1!.ws! })
  await waitFor('the two bootstrap nodes to know each other', async () =>
    (await boot1.call('viewSize', { nodeId: 'boot-1' })).reachable === 2, { timeoutMs: 10_000, intervalMs: 20 })

  const byHost = new Map<NodeHost, NodeSpec[]>()
  for (let i = 2; i < n; i++) {
    const host = others[(i - 2) % others.length]!
    byHost.set(host, [...(byHost.get(host) ?? []), spec(`node-${String(i).padStart(2, '0')}`, false, [bootstraps[i % 2]!])])
  }
  await Promise.all(hosts.map(async h => h.call('processStats', { reset: true })))
  const t0 = Date.now()
  await Promise.all([...byHost].map(async ([host, nodes]) => host.call('start', { nodes })))
  const results = await Promise.all(hosts.map(async host => host.call('waitConverged', { timeoutMs: timeoutMs - (Date.now() - t0) }, timeoutMs + 30_000)))
  const stats = await Promise.all(hosts.map(async (h, i) => ({ host: h.name, bootstrap: i < 2, ...await h.call('processStats', { reset: false }) })))
  return { t0, records: results.flatMap(r => r.records), warnings: results.flatMap(r => r.warnings), stats, load: loadavg()[0]! }
}

function complete (run: Run): boolean {
  return run.records.every(r => r.reachesAllAt != null)
}

/** Seconds from t0: to the last view listing all, to the last reaching all, the median node, the last node started. */
function times ({ t0, records }: Run): { knows?: number, reaches?: number, medianNode?: number, lastStarted: number } {
  const since = (at: number): number => (at - t0) / 1000
  const reaches = records.map(r => r.reachesAllAt).filter(at => at != null).map(since).sort((a, b) => a - b)
  const knows = records.map(r => r.knowsAllAt)
  return {
    knows: knows.every(at => at != null) ? since(Math.max(...knows)) : undefined,
    reaches: reaches.length === records.length ? reaches[reaches.length - 1] : undefined,
    medianNode: reaches.length > records.length / 2 ? reaches[Math.ceil(records.length / 2) - 1] : undefined,
    lastStarted: since(Math.max(...records.filter(r => !r.listen).map(r => r.startedAt)))
  }
}

/** One line per run, for the progress output and the measurement's note. */
function summary (run: Run, scenario: Scenario): string {
  const t = times(run)
  const n = scenario.nodes
  const cpu = run.stats.reduce((sum, s) => sum + s.cpuMs, 0) / 1000
  const relays = run.stats.filter(s => s.bootstrap)
  const lag = (stats: Run['stats']): string => `${Math.max(...stats.map(s => s.delayP99Ms)).toFixed(0)}/${Math.max(...stats.map(s => s.delayMaxMs)).toFixed(0)} ms`
  const outcome = t.reaches != null
    ? `every view lists all ${n} at ${t.knows!.toFixed(1)} s and reaches all at ${t.reaches.toFixed(1)} s`
    : `NOT converged within ${scenario.timeoutMs / 1000} s: ${run.records.filter(r => r.knowsAllAt != null).length} of ${n} views listed all ${n} at some point, ` +
      `${run.records.filter(r => r.reachesAllAt != null).length} reached all; at the end the views listed ` +
      `${range(run.records.map(r => r.known))} and reached ${range(run.records.map(r => r.reachable))} nodes`
  return `${outcome}; cluster CPU ${cpu.toFixed(1)} s (relays ${relays.map(s => (s.cpuMs / 1000).toFixed(1)).join(' + ')} s), ` +
    `event loop lag p99/max: relay processes ${lag(relays)}, others ${lag(run.stats.filter(s => !s.bootstrap))}; load ${run.load.toFixed(1)}`
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

function convergenceMeasurement (scenario: Scenario, runs: Run[], hosts: number): Measurement {
  const all = runs.map(times)
  const pick = (key: 'knows' | 'reaches' | 'medianNode' | 'lastStarted'): number[] => all.map(t => t[key]).filter(v => v != null)
  const variants: Variant[] = [
    { name: 'last dial-out node started', samples: pick('lastStarted') },
    { name: 'median node reaches all', samples: pick('medianNode') },
    { name: 'every view lists all N', samples: pick('knows') },
    { name: 'every view reaches all N', samples: pick('reaches') }
  ].filter(v => v.samples.length > 0)
  const warnings = new Map<string, number>()
  for (const { first, count } of runs.flatMap(r => r.warnings)) {
    const kind = first.replace(/^[^:]+: /, '').replace(/12D3KooW\w+/g, '…').replace(/\b(node|boot)-\d+\b/g, '…').replace(/\d+/g, 'N')
    warnings.set(kind, (warnings.get(kind) ?? 0) + count)
  }
  return {
    what: `convergence, ${describe(scenario)}: 2 listening bootstrap nodes + ${scenario.nodes - 2} dial-out only; seconds after the dial-out nodes were told to start`,
    unit: 's',
    variants,
    note: `${Math.min(scenario.nodes, hosts)} processes; "reaches" = a direct or relayed connection open to every node; one sample per converged run\n   ` +
      runs.map((run, i) => `run ${i + 1}: ${summary(run, scenario)}`).join('\n   ') +
      [...warnings].sort((a, b) => b[1] - a[1]).map(([kind, count]) => `\n   ${count} warnings on all nodes together: ${kind}`).join('')
  }
}

/** Lets the cluster settle, then counts every node's traffic over a fixed window. */
async function measureTraffic (hosts: NodeHost[], options: ClusterBenchOptions): Promise<TrafficRecord[]> {
  await sleep(options.settleMs)
  await Promise.all(hosts.map(async h => h.call('resetTraffic', {})))
  await sleep(options.trafficWindowMs)
  return (await Promise.all(hosts.map(async h => h.call('readTraffic', {})))).flat()
}

const GOSSIPSUB = /^\/(meshsub|floodsub)\//

function trafficMeasurements (records: TrafficRecord[], scenario: Scenario, windowMs: number, converged: boolean): Measurement[] {
  const n = records.length
  const perMinute = (r: TrafficRecord, value: number): number => value * 60_000 / r.ms
  const kib = (bytes: number): number => bytes / 1024
  const gossip = (r: TrafficRecord): { sent: number, received: number } => Object.entries(r.protocols)
    .filter(([protocol]) => GOSSIPSUB.test(protocol))
    .reduce((sum, [, c]) => ({ sent: sum.sent + c.sent, received: sum.received + c.received }), { sent: 0, received: 0 })
  const byRole = (name: string, value: (r: TrafficRecord) => number): Variant[] => [
    { name: `${name}, dial-out nodes`, samples: records.filter(r => !r.listen).map(value) },
    { name: `${name}, bootstrap (relay) nodes`, samples: records.filter(r => r.listen).map(value) }
  ]
  const cardBytes = records.filter(r => r.delivered > 0).map(r => r.deliveredBytes / r.delivered)
  const received = records.reduce((s, r) => s + gossip(r).received, 0)
  const delivered = records.reduce((s, r) => s + r.deliveredBytes, 0)
  const where = `${n} nodes${scenario.ipColocationWeight == null ? '' : ', IP colocation weight ' + scenario.ipColocationWeight}${converged ? '' : ', NOT CONVERGED'}`
  const window = `${windowMs / 1000} s window, ${scenario.intervalMs / 1000} s announce interval`
  return [
    {
      what: `announcements per node per minute (${where})`,
      unit: 'msg/min',
      variants: [
        { name: 'published', samples: records.map(r => perMinute(r, r.published)) },
        { name: 'received (each message once)', samples: records.map(r => perMinute(r, r.delivered)) }
      ].filter(v => v.samples.length > 0),
      note: `${window}; one sample per node; connections opened per node per minute in the window, p50 ${median(records.map(r => perMinute(r, r.churn.opened))).toFixed(1)} ` +
        `(relayed ${median(records.map(r => perMinute(r, r.churn.relayedOpened))).toFixed(1)}), closed ${median(records.map(r => perMinute(r, r.churn.closed))).toFixed(1)}`
    },
    {
      what: `announcement size (${where})`,
      unit: 'bytes',
      variants: [{ name: 'mean card payload received by a node', samples: cardBytes }].filter(v => v.samples.length > 0),
      note: 'JSON card incl. links; the gossipsub envelope (signature, key, seqno, topic) adds ~150 bytes'
    },
    {
      what: `gossipsub traffic per node per minute, stream payload sent + received (${where})`,
      unit: 'KiB/min',
      variants: byRole('gossipsub', r => kib(perMinute(r, gossip(r).sent + gossip(r).received))).filter(v => v.samples.length > 0),
      note: `${window}; the one topic is the announcement topic; gossipsub bytes received per byte of announcement delivered: ` +
        `${delivered > 0 ? (received / delivered).toFixed(1) : 'n/a'} (fan-out, duplicates, control)`
    },
    {
      what: `all traffic per node per minute, bytes on direct connections sent + received (${where})`,
      unit: 'KiB/min',
      variants: byRole('wire', r => kib(perMinute(r, r.wire.sent + r.wire.received))).filter(v => v.samples.length > 0),
      note: `${window}; Noise and Yamux framing, heartbeat pings, identify, and on relays the relayed connections' bytes`
    }
  ]
}

/**
 * Three paths, alternating repetition by repetition: a dial-out node to
 * another dial-out node through a relay; the same sending node to its relay
 * (direct); and a listening pair in the same two processes (direct).
 */
async function throughput (hosts: NodeHost[], options: ClusterBenchOptions): Promise<Measurement> {
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
    const { bytes, chunkBytes, reps } = options.transfer
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
