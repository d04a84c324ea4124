/**
 * Runs the benchmarks and prints one table per measurement; the raw samples
 * go to bench/results/<time>.json (gitignored).
 *
 *   npm run bench                  all benchmarks
 *   npm run bench -- swarm         only the named ones
 *   npm run bench -- --quick       few samples: checks that the bench works, numbers mean little
 *   npm run bench -- relay-soak    an opt-in benchmark (OPT_IN below: too long for every run)
 *   npm run bench -- relay-soak --minutes 10   a shorter churn soak (default 60 minutes)
 *   npm run bench -- relay-soak --compare memory   the soak's relay beside allocator and heap knobs (default: beside one without the socket fix)
 *   npm run bench -- cluster --nodes 50,200    the cluster view on demand at these sizes only
 *   npm run bench -- cluster --nodes 200 --join-rate 2 [--no-burst]   also (or only) nodes joining 2 a second
 *
 * A new benchmark is a file exporting `(options) => Promise<BenchResult>`,
 * added to BENCHES below.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { importDist } from './lib/dist.js'
import { REPO_ROOT } from './lib/paths.js'
import { formatResult, resultJson, type BenchResult } from './lib/report.js'
import { SWARM_DEFAULTS, SWARM_QUICK, swarmBench } from './swarm.js'
import { MODEL_PROXY_DEFAULTS, MODEL_PROXY_QUICK, modelProxyBench } from './model-proxy.js'
import { MODEL_PROXY_TRACE_DEFAULTS, MODEL_PROXY_TRACE_QUICK, modelProxyTraceBench } from './model-proxy-trace.js'
import { CLUSTER_DEFAULTS, CLUSTER_QUICK, CLUSTER_SCALE, clusterAt, clusterBench } from './cluster.js'
import { relaySoakBench, SOAK_DEFAULTS, SOAK_QUICK } from './relay-soak.js'
import { relayIdleBench, IDLE_DEFAULTS, IDLE_QUICK } from './relay-idle.js'
import { WORK_DEFAULTS, WORK_QUICK, workBench } from './work.js'
import { IDLE_CPU_DEFAULTS, IDLE_CPU_QUICK, idleBench } from './idle.js'
import { TASKS_DEFAULTS, TASKS_QUICK, tasksBench } from './tasks.js'
import { MEMBERSHIP_DEFAULTS, MEMBERSHIP_QUICK, MEMBERSHIP_REVOKE, membershipBench } from './membership.js'
import { DEADLINES_DEFAULTS, DEADLINES_QUICK, deadlinesBench } from './deadlines.js'
import { HOP_FLOOR_DEFAULTS, HOP_FLOOR_QUICK, hopFloorBench } from './hop-floor.js'

const { VERSION } = await importDist<typeof import('../src/version.js')>('version.js')

const progress = (line: string): void => { process.stderr.write(`  .. ${line}\n`) }

interface RunOptions {
  quick: boolean
  /** Length of the churn soak, when given. */
  minutes?: number
  /** Cluster sizes for the cluster bench, when given. */
  nodes?: number[]
  /** Nodes started per second in the cluster bench's rolling joins, beside (or with noBurst instead of) the burst. */
  joinRates?: number[]
  noBurst: boolean
  /** What the churn soak's relay runs beside, when given. */
  compare?: 'sockets' | 'memory'
}

const BENCHES: Record<string, (options: RunOptions) => Promise<BenchResult>> = {
  swarm: async ({ quick }) => swarmBench({ ...(quick ? SWARM_QUICK : SWARM_DEFAULTS), progress }),
  'model-proxy': async ({ quick }) => modelProxyBench({ ...(quick ? MODEL_PROXY_QUICK : MODEL_PROXY_DEFAULTS), progress }),
  'model-proxy-trace': async ({ quick }) => modelProxyTraceBench({ ...(quick ? MODEL_PROXY_TRACE_QUICK : MODEL_PROXY_TRACE_DEFAULTS), progress }),
  deadlines: async ({ quick }) => deadlinesBench({ ...(quick ? DEADLINES_QUICK : DEADLINES_DEFAULTS), progress }),
  'hop-floor': async ({ quick }) => hopFloorBench({ ...(quick ? HOP_FLOOR_QUICK : HOP_FLOOR_DEFAULTS), progress }),
  idle: async ({ quick }) => idleBench({ ...(quick ? IDLE_CPU_QUICK : IDLE_CPU_DEFAULTS), progress }),
  cluster: async ({ quick, nodes, joinRates, noBurst }) => clusterBench({ ...(nodes != null ? clusterAt(nodes, joinRates, !noBurst) : quick ? CLUSTER_QUICK : CLUSTER_DEFAULTS), progress }),
  work: async ({ quick }) => workBench({ ...(quick ? WORK_QUICK : WORK_DEFAULTS), progress }),
  tasks: async ({ quick }) => tasksBench({ ...(quick ? TASKS_QUICK : TASKS_DEFAULTS), progress }),
  membership: async ({ quick }) => membershipBench({ ...(quick ? MEMBERSHIP_QUICK : MEMBERSHIP_DEFAULTS), progress }),
  'membership-revoke': async ({ quick }) => membershipBench({ ...(quick ? { ...MEMBERSHIP_QUICK, connections: 0, validations: 0 } : MEMBERSHIP_REVOKE), progress }),
  'cluster-scale': async ({ quick }) => clusterBench({ ...(quick ? CLUSTER_QUICK : CLUSTER_SCALE), progress }),
  'relay-soak': async ({ quick, minutes, compare }) => relaySoakBench({ ...(quick ? SOAK_QUICK : SOAK_DEFAULTS), ...(minutes == null ? {} : { minutes }), ...(compare == null ? {} : { compare }), progress }),
  'relay-idle': async ({ quick }) => relayIdleBench({ ...(quick ? IDLE_QUICK : IDLE_DEFAULTS), progress })
}

/** Run only when named: they take too long for every run. */
const OPT_IN = new Set(['model-proxy-trace', 'membership-revoke', 'cluster-scale', 'relay-soak', 'relay-idle'])

/** A mistake in the command line: printed without a stack trace. */
class UsageError extends Error {}

async function main (): Promise<void> {
  let args
  try {
    args = parseArgs({
      options: { quick: { type: 'boolean', default: false }, 'no-json': { type: 'boolean', default: false }, minutes: { type: 'string' }, nodes: { type: 'string' }, compare: { type: 'string' }, 'join-rate': { type: 'string' }, 'no-burst': { type: 'boolean', default: false } },
      allowPositionals: true
    })
  } catch (err: any) {
    throw new UsageError(err.message)
  }
  const { values, positionals } = args
  const unknown = positionals.filter(name => !(name in BENCHES))
  if (unknown.length > 0) throw new UsageError(`unknown benchmark ${unknown.join(', ')}; expected some of: ${Object.keys(BENCHES).join(', ')}`)
  const minutes = values.minutes == null ? undefined : Number(values.minutes)
  if (minutes != null && !(minutes > 0)) throw new UsageError(`--minutes: got "${values.minutes}"; expected a positive number`)
  const nodes = values.nodes?.split(',').map(Number)
  if (nodes != null && !nodes.every(n => Number.isInteger(n) && n >= 3)) throw new UsageError(`--nodes: got "${values.nodes}"; expected sizes of 3 or more, comma-separated`)
  const joinRates = values['join-rate']?.split(',').map(Number)
  if (joinRates != null && !joinRates.every(r => r > 0)) throw new UsageError(`--join-rate: got "${values['join-rate']}"; expected nodes per second, positive, comma-separated`)
  if ((joinRates != null || values['no-burst']) && nodes == null) throw new UsageError('--join-rate and --no-burst go with --nodes (the sizes to join)')
  if (values['no-burst'] && joinRates == null) throw new UsageError('--no-burst leaves nothing to run without --join-rate')
  const compare = values.compare
  if (compare != null && compare !== 'sockets' && compare !== 'memory') throw new UsageError(`--compare: got "${compare}"; expected sockets or memory`)
  const names = positionals.length > 0 ? positionals : Object.keys(BENCHES).filter(name => !OPT_IN.has(name))

  const machine = await machineInfo()
  process.stdout.write(`clawmatrix ${machine.clawmatrix} (${machine.commit}), libp2p ${machine.libp2p}, Node ${machine.node}, ` +
    `${machine.cpus} x ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.os}, load average ${machine.loadBefore}${values.quick ? ', QUICK run' : ''}\n\n`)

  const started = Date.now()
  const results: BenchResult[] = []
  for (const name of names) {
    const result = await BENCHES[name]!({ quick: values.quick, minutes, nodes, joinRates, noBurst: values['no-burst'], compare })
    results.push(result)
    process.stdout.write(formatResult(result) + '\n\n')
  }
  const seconds = (Date.now() - started) / 1000
  // Other work on the machine skews every figure. The bench itself keeps about one core busy, so
  // a load average well above 1 before, or above 2 after, marks a run to repeat.
  machine.loadAfter = loadAverage()
  process.stdout.write(`done in ${seconds.toFixed(0)} s; load average before ${machine.loadBefore}, after ${machine.loadAfter}\n`)

  if (!values['no-json']) {
    const dir = join(REPO_ROOT, 'bench', 'results')
    await mkdir(dir, { recursive: true })
    const file = join(dir, `${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`)
    await writeFile(file, JSON.stringify({ machine, quick: values.quick, seconds, results: results.map(resultJson) }, null, 2) + '\n')
    process.stdout.write(`raw samples: ${file}\n`)
  }
}

async function machineInfo (): Promise<Record<string, string | number>> {
  const libp2p = JSON.parse(await readFile(join(REPO_ROOT, 'node_modules', 'libp2p', 'package.json'), 'utf8')) as { version: string }
  let commit = 'no git'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {}
  return {
    clawmatrix: VERSION,
    commit,
    libp2p: libp2p.version,
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown CPU',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    loadBefore: loadAverage()
  }
}

/** The 1-minute load average, e.g. "0.42". */
function loadAverage (): string {
  return loadavg()[0]!.toFixed(2)
}

// Libp2p and child-process handles may outlive the benches: exit explicitly.
main().then(() => process.exit(0), (err: Error) => {
  process.stderr.write(err instanceof UsageError ? `bench: ${err.message}\n` : `bench failed: ${err.stack ?? err.message}\n`)
  process.exit(err instanceof UsageError ? 2 : 1)
})
