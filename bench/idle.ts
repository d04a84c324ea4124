/**
 * Idle CPU: what a node costs while nothing happens, side by side with a
 * plain libp2p node (./lib/plain-node.ts) in the same run.
 *
 * 1. a listener alone: the clawmatrix CLI `relay` and the baseline process;
 * 2. the same listeners with `peers` peer processes connected to each:
 *    dial-out clawmatrix members (`node`, the relay as their configured
 *    peer: cards, heartbeats, gossip) and plain nodes that dial the plain
 *    listener and stay connected (identify, nothing more).
 *
 * CPU time of each process from /proc (utime + stime, 10 ms resolution)
 * over `seconds`, `rounds` times, all processes in the same windows, after
 * every clawmatrix view listed every member. A bare `node` process that
 * only waits is the floor.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnNodeUntilReady, type ReadyChild } from './lib/child.js'
import { importDist } from './lib/dist.js'
import { START_LINE } from './lib/listeners.js'
import { CLI, requireBuilt } from './lib/paths.js'
import { cpuMs } from './lib/portkey.js'
import { sleep, waitFor } from './lib/wait.js'
import type { BenchResult, Variant } from './lib/report.js'
import type { NodeStatus } from '../src/services/status.js'

const { SECRET_ENV } = await importDist<typeof import('../src/cli/run-node.js')>('cli/run-node.js')

export interface IdleBenchOptions {
  /** Peer processes connected to each listener in part 2. */
  peers: number
  /** Windows per part, and their length. */
  rounds: number
  seconds: number
  /** Idle time after the cluster formed, before the first window. */
  settleSeconds: number
  progress: (line: string) => void
}

export const IDLE_CPU_DEFAULTS: Omit<IdleBenchOptions, 'progress'> = { peers: 5, rounds: 3, seconds: 20, settleSeconds: 5 }
/** Enough to see that every part works, in about 20 s; the figures mean little. */
export const IDLE_CPU_QUICK: Omit<IdleBenchOptions, 'progress'> = { peers: 2, rounds: 1, seconds: 3, settleSeconds: 1 }

const PLAIN = 'plain libp2p'
const CLAWMATRIX = 'clawmatrix'
const FLOOR = 'node, waiting (no libp2p)'
const STATUS_LINE = /status at (\S+)\/clawmatrix\/status/

/** A process under watch, and the row its samples go to. */
interface Watched { row: string, child: ReadyChild }

export async function idleBench (options: IdleBenchOptions): Promise<BenchResult> {
  const secret = randomBytes(32).toString('hex')
  const env = { ...process.env, [SECRET_ENV]: secret }
  const dir = await mkdtemp(join(tmpdir(), 'clawmatrix-bench-idle-'))
  const children: ReadyChild[] = []
  const spawn = async (args: string[], ready = START_LINE): Promise<ReadyChild> => {
    const child = await spawnNodeUntilReady(args, { ready, env, timeoutMs: 60_000 })
    children.push(child)
    return child
  }
  try {
    options.progress('starting the listeners and a waiting node')
    const floor = await spawn(['-e', 'process.stderr.write("ready\\n"); setInterval(() => {}, 1 << 30)'], /^ready$/m)
    const plain = await spawn([requireBuilt(fileURLToPath(new URL('./baseline-node.js', import.meta.url))), '--listen-host', '127.0.0.1', '--listen-port', '0'])
    const relay = await spawn([requireBuilt(CLI), 'relay', '--listen-host', '127.0.0.1', '--listen-port', '0', '--proxy-port', '0', '--state-dir', join(dir, 'relay')])
    const alone = await sample(options, [
      { row: FLOOR, child: floor }, { row: `${PLAIN} listener`, child: plain }, { row: `${CLAWMATRIX} relay`, child: relay }
    ])

    options.progress(`connecting ${options.peers} peers to each listener`)
    const plainPeers = await Promise.all(Array.from({ length: options.peers }, async () =>
      spawn([requireBuilt(fileURLToPath(new URL('./baseline-node.js', import.meta.url))), '--dial', wsAddress(plain)])))
    const members = await Promise.all(Array.from({ length: options.peers }, async (_, i) => {
      const file = join(dir, `member-${i}.json`)
      await writeFile(file, JSON.stringify({ nodeId: `member-${i}`, proxyPort: 0, peers: [{ nodeId: 'relay', url: wsAddress(relay) }] }))
      return spawn([requireBuilt(CLI), 'node', '--config', file, '--state-dir', join(dir, `member-${i}`)])
    }))
    await waitFor('every clawmatrix view to list every member', async () => {
      const views = await Promise.all([relay, ...members].map(async c => statusOf(c)))
      return views.every(s => s.cluster.length === options.peers + 1)
    }, { timeoutMs: 60_000, intervalMs: 250 })
    const connected = await sample(options, [
      { row: FLOOR, child: floor },
      { row: `${PLAIN} listener`, child: plain },
      ...plainPeers.map(child => ({ row: `${PLAIN} peer`, child })),
      { row: `${CLAWMATRIX} relay`, child: relay },
      ...members.map(child => ({ row: `${CLAWMATRIX} member`, child }))
    ])

    const method = `utime + stime from /proc/<pid>/stat (10 ms resolution), ${options.rounds} window(s) of ${options.seconds} s after ${options.settleSeconds} s idle`
    return {
      name: 'idle',
      title: 'idle CPU per process: clawmatrix vs plain libp2p',
      measurements: [
        { what: 'idle CPU of a listener alone', unit: 'ms/s', variants: variants(alone), note: `${method}; clawmatrix = \`node dist/cli/main.js relay\`` },
        {
          what: `idle CPU with ${options.peers} peer processes connected to each listener`,
          unit: 'ms/s',
          variants: variants(connected),
          note: `${method}, after every view listed every member; members are dial-out \`node\`s with the relay as their peer (one sample per process and window)`
        }
      ]
    }
  } finally {
    await Promise.allSettled(children.map(async c => { await c.stop() }))
    await rm(dir, { recursive: true, force: true })
  }
}

/** CPU ms per second of each watched process, per window, by row. */
async function sample (options: IdleBenchOptions, watched: Watched[]): Promise<Map<string, number[]>> {
  await sleep(options.settleSeconds * 1000)
  const rows = new Map<string, number[]>()
  for (let round = 0; round < options.rounds; round++) {
    options.progress(`idle window ${round + 1} of ${options.rounds}: ${options.seconds} s, ${watched.length} processes`)
    const before = await Promise.all(watched.map(async w => cpuMs(w.child.pid)))
    await sleep(options.seconds * 1000)
    const after = await Promise.all(watched.map(async w => cpuMs(w.child.pid)))
    watched.forEach((w, i) => {
      const samples = rows.get(w.row) ?? []
      samples.push((after[i]! - before[i]!) / options.seconds)
      rows.set(w.row, samples)
    })
  }
  return rows
}

function variants (rows: Map<string, number[]>): Variant[] {
  return [...rows].map(([name, samples]) => ({ name, samples, baseline: name === `${PLAIN} listener` }))
}

function wsAddress (child: ReadyChild): string {
  const address = child.match[2]?.split(', ').find(a => a.includes('/ws') && !a.includes('p2p-circuit'))
  if (address == null) throw new Error(`no ws address in "${child.match[0]}"`)
  return address
}

async function statusOf (child: ReadyChild): Promise<NodeStatus> {
  const url = child.match.input?.match(STATUS_LINE)?.[1]
  if (url == null) throw new Error(`no status URL in "${child.match.input ?? ''}"`)
  return await (await fetch(`${url}/clawmatrix/status`)).json() as NodeStatus
}
