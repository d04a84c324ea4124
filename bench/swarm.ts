/**
 * The swarm node against a plain libp2p node, side by side in one run:
 * process start to listening, dial to open connection (and a wrong-secret
 * dial to refusal), and the resident memory of one node process.
 *
 * The listeners are child processes (the clawmatrix CLI `relay`, and
 * ./baseline-node.ts); the dialers live in the bench process. Variants are
 * interleaved sample by sample so that drift on the machine hits both alike.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnNodeUntilReady } from './lib/child.js'
import { importDist } from './lib/dist.js'
import { paced, readRss, RSS_METHOD, START_LINE, withListeners, type Launch, type Listener } from './lib/listeners.js'
import { startMember, startPlain, stopAll, type AnyNode } from './lib/members.js'
import { CLI, requireBuilt } from './lib/paths.js'
import { timed, waitFor } from './lib/wait.js'
import type { BenchResult, Measurement, Variant } from './lib/report.js'

const { SECRET_ENV } = await importDist<typeof import('../src/cli/run-node.js')>('cli/run-node.js')

export interface SwarmBenchOptions {
  /** Process starts per variant. */
  starts: number
  /** Dials per variant, after `warmup` unrecorded ones. */
  dials: number
  /** Wrong-secret dials. */
  wrongDials: number
  warmup: number
  /** Peers connected at once for the "with peers" memory figure. */
  peers: number
  /** Progress lines (to stderr). */
  progress: (line: string) => void
}

export const SWARM_DEFAULTS: Omit<SwarmBenchOptions, 'progress'> = { starts: 20, dials: 500, wrongDials: 200, warmup: 10, peers: 20 }
/** Enough to see that every part works, in about 15 s; the figures mean little. */
export const SWARM_QUICK: Omit<SwarmBenchOptions, 'progress'> = { starts: 2, dials: 10, wrongDials: 5, warmup: 2, peers: 3 }

const DIAL_TIMEOUT_MS = 10_000
const WRONG_DIAL_TIMEOUT_MS = 5_000
const CLAWMATRIX = 'clawmatrix'
const PLAIN = 'plain libp2p'

export async function swarmBench (options: SwarmBenchOptions): Promise<BenchResult> {
  const secret = randomBytes(32).toString('hex')
  const launches = nodeLaunches(secret)
  const measurements: Measurement[] = [await startupTimes(options, [emptyNodeLaunch(), ...launches])]
  // Fresh listeners for each part: RSS keeps its high-water mark, so one part's history would skew the next.
  measurements.push(...await withListeners(launches, async listeners => memoryWithPeers(options, secret, listeners)))
  measurements.push(...await withListeners(launches, async listeners => dialTimes(options, secret, listeners)))
  return { name: 'swarm', title: 'swarm node vs plain libp2p (ws + noise + yamux + identify + ping)', measurements }
}

/** Idle RSS of fresh listeners, then with `options.peers` peers connected to each. */
async function memoryWithPeers (options: SwarmBenchOptions, secret: string, listeners: Map<string, Listener>): Promise<Measurement[]> {
  options.progress('memory: idle')
  const idle = await readRss(listeners, PLAIN)
  options.progress(`memory: ${options.peers} peers connected`)
  const connected = await rssWithPeers(options.peers, secret, listeners)
  return [
    { what: 'RSS of the listener process, idle after start', unit: 'MiB', variants: idle, note: RSS_METHOD },
    {
      what: `RSS of the same processes with ${options.peers} peers connected`,
      unit: 'MiB',
      variants: connected,
      note: `${RSS_METHOD}; the peers are in the bench process, identify done`
    }
  ]
}

/** Good dials against both listeners (interleaved), then wrong-secret dials against clawmatrix's. */
async function dialTimes (options: SwarmBenchOptions, secret: string, listeners: Map<string, Listener>): Promise<Measurement[]> {
  const clawmatrix = listeners.get(CLAWMATRIX)!
  const plain = listeners.get(PLAIN)!
  const dialers: AnyNode[] = []
  try {
    const member = await startMember('bench-dialer', secret)
    dialers.push(member)
    const plainDialer = await startPlain()
    dialers.push(plainDialer)
    const intruder = await startMember('bench-intruder', randomBytes(32).toString('hex'))
    dialers.push(intruder)

    options.progress(`dial: ${options.warmup} warm-up + ${options.dials} per variant`)
    const dialMs: Record<string, number[]> = { [PLAIN]: [], [CLAWMATRIX]: [] }
    const pairs = [[PLAIN, plainDialer, plain], [CLAWMATRIX, member, clawmatrix]] as const
    for (let i = -options.warmup; i < options.dials; i++) {
      // Alternate who goes first: the other listener may still be closing the previous connection.
      for (const [name, dialer, listener] of i % 2 === 0 ? pairs : [...pairs].reverse()) {
        const ms = await dialAndClose(dialer, listener)
        if (i >= 0) dialMs[name]!.push(ms)
      }
    }
    options.progress('memory: after the dial loop')
    const churn = await readRss(listeners, PLAIN)

    options.progress(`dial with a wrong secret: ${options.wrongDials}`)
    const otherFailures = new Map<string, number>()
    const refusedMs: number[] = []
    const wrongWarmup = Math.min(options.warmup, 2)
    for (let i = -wrongWarmup; i < options.wrongDials; i++) {
      const { ms, byGate, reason } = await dialRefused(intruder, clawmatrix)
      if (i < 0) continue
      if (byGate) refusedMs.push(ms)
      else otherFailures.set(reason, (otherFailures.get(reason) ?? 0) + 1)
    }
    if (refusedMs.length === 0) throw new Error(`no wrong-secret dial was refused by the gate: ${[...otherFailures.keys()].join('; ')}`)
    options.progress('memory: after the wrong-secret dials')
    const refused = (await readRss(listeners, PLAIN)).filter(v => v.name === CLAWMATRIX)

    return [
      {
        what: 'dial() to open connection (ws + noise + yamux, loopback, listener in another process)',
        unit: 'ms',
        variants: [{ name: PLAIN, samples: dialMs[PLAIN]!, baseline: true }, { name: CLAWMATRIX, samples: dialMs[CLAWMATRIX]! }],
        note: 'each connection is closed before the next dial; clawmatrix = createSwarm with the secret-bound Noise prologue'
      },
      {
        what: 'wrong-secret dial() to refusal (clawmatrix only)',
        unit: 'ms',
        variants: [{ name: CLAWMATRIX, samples: refusedMs }],
        note: 'the dialer fails to decrypt the listener\'s first Noise reply; only such refusals are timed' +
          [...otherFailures].map(([reason, n]) => `; ${n} dials failed otherwise, not counted: ${reason}`).join('')
      },
      {
        what: `RSS of the listener process after ${options.warmup + options.dials} dial/close cycles`,
        unit: 'MiB',
        variants: churn,
        note: RSS_METHOD
      },
      {
        what: `RSS of the clawmatrix listener after a further ${wrongWarmup + options.wrongDials} wrong-secret dials`,
        unit: 'MiB',
        variants: refused,
        note: RSS_METHOD
      }
    ]
  } finally {
    await stopAll(dialers)
  }
}

function nodeLaunches (secret: string): Launch[] {
  const baseline = requireBuilt(fileURLToPath(new URL('./baseline-node.js', import.meta.url)))
  return [
    {
      name: PLAIN,
      ready: START_LINE,
      prepare: async () => ({ args: [baseline, '--listen-host', '127.0.0.1', '--listen-port', '0'] })
    },
    {
      name: CLAWMATRIX,
      ready: START_LINE,
      prepare: async () => {
        // A fresh state dir each time: every start creates its peer key, as the baseline does.
        const stateDir = await mkdtemp(join(tmpdir(), 'clawmatrix-bench-'))
        return {
          args: [requireBuilt(CLI), 'relay', '--listen-host', '127.0.0.1', '--listen-port', '0', '--proxy-port', '0', '--state-dir', stateDir],
          env: { ...process.env, [SECRET_ENV]: secret },
          cleanup: async () => { await rm(stateDir, { recursive: true, force: true }) }
        }
      }
    }
  ]
}

/** Node itself starting and printing a line: the floor under both. */
function emptyNodeLaunch (): Launch {
  return {
    name: 'node -e (no libp2p)',
    ready: /^ready$/m,
    prepare: async () => ({ args: ['-e', 'process.stderr.write("ready\\n")'] })
  }
}

async function startupTimes (options: SwarmBenchOptions, launches: Launch[]): Promise<Measurement> {
  const samples = new Map(launches.map(l => [l.name, [] as number[]]))
  options.progress(`start-up: 1 warm-up + ${options.starts} per variant`)
  for (let i = -1; i < options.starts; i++) {
    for (const launch of launches) {
      const { args, env, cleanup } = await launch.prepare()
      try {
        const child = await spawnNodeUntilReady(args, { ready: launch.ready, ...(env == null ? {} : { env }) })
        await child.stop()
        if (i >= 0) samples.get(launch.name)!.push(child.readyMs)
      } finally {
        await cleanup?.()
      }
    }
  }
  return {
    what: 'process start to listening (spawn() to the start line on stderr)',
    unit: 'ms',
    variants: launches.map(l => ({ name: l.name, samples: samples.get(l.name)!, baseline: l.name === PLAIN })),
    note: 'clawmatrix = `node dist/cli/main.js relay` (swarm, relay server, gossipsub, status HTTP endpoint)'
  }
}

/** Dials, times dial() until the connection is open, then closes it. */
async function dialAndClose (dialer: AnyNode, listener: Listener): Promise<number> {
  // A dial to a peer already connected returns that connection at once: never time that.
  await waitFor('the previous connection to close', () => dialer.getConnections(listener.peerId).length === 0)
  await paced(listener)
  const { ms, value: connection } = await timed(async () => dialer.dial(listener.address, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) }))
  await connection.close({ signal: AbortSignal.timeout(2_000) }).catch((err: Error) => { connection.abort(err) })
  return ms
}

/** Times a dial that the gate must refuse; fails the bench if it connects. */
async function dialRefused (intruder: AnyNode, listener: Listener): Promise<{ ms: number, byGate: boolean, reason: string }> {
  await paced(listener)
  const start = performance.now()
  let connection
  try {
    connection = await intruder.dial(listener.address, { signal: AbortSignal.timeout(WRONG_DIAL_TIMEOUT_MS) })
  } catch (err: any) {
    const reason = `${err.name}: ${err.message}`
    // Noise: "handshake stage 1 validation fail: Invalid chacha20poly1305 decryption".
    return { ms: performance.now() - start, byGate: /decrypt/i.test(reason), reason }
  }
  connection.abort(new Error('wrong secret'))
  throw new Error('the gate let a wrong-secret dial through')
}

/** Connects `count` fresh peers of the matching kind to each listener, then reads the listeners' RSS. */
async function rssWithPeers (count: number, secret: string, listeners: Map<string, Listener>): Promise<Variant[]> {
  const peers: AnyNode[] = []
  try {
    for (const [name, listener] of listeners) {
      const group = await Promise.all(Array.from({ length: count }, async (_, i) =>
        name === CLAWMATRIX ? startMember(`bench-peer-${i}`, secret) : startPlain()))
      peers.push(...group)
      await Promise.all(group.map(async peer => {
        await peer.dial(listener.address, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
        await waitFor(`identify with ${name}`, async () =>
          (await peer.peerStore.get(listener.peerId)).protocols.length > 0)
      }))
    }
    return await readRss(listeners, PLAIN)
  } finally {
    await stopAll(peers)
  }
}
