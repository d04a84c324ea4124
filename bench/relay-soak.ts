/**
 * Relay churn soak (opt-in: `npm run bench -- relay-soak [--minutes N]`):
 * members with fresh identities join a relay and depart in turn gracefully
 * (stop), by reset (their connection aborted, the socket closed under it) and
 * silently (they vanish: their packets stop, nothing closes, as a sleeping
 * laptop or a dropped NAT mapping). Every `sampleMs` the relay's RSS, heap
 * after a full GC, open descriptors, connections, peer store and view size
 * are sampled; after the churn, once the relay has dropped the last member,
 * they must be back where they started.
 *
 * Side by side in the same run (`compare`): the same churn against a relay
 * whose WebSocket transport is left as published (sockets of aborted
 * connections not released; src/node/websocket-transport.ts), or, to tell
 * where RSS outside the JavaScript heap goes, against relays whose C
 * allocator keeps at most two arenas (MALLOC_ARENA_MAX=2) and whose young
 * generation is capped (--max-semi-space-size). Each sample also says where
 * the relay's resident memory is (./lib/process-memory.ts).
 *
 * Processes: each relay in its own (./lib/soak-relay.ts, --expose-gc); the
 * members in this one. A member reaches its relay through a TCP forwarder
 * here that can make it vanish: it drops the member's side and keeps the
 * relay's side open, reading and answering nothing, as the network does.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { importDist } from './lib/dist.js'
import { requireBuilt } from './lib/paths.js'
import { sleep } from './lib/wait.js'
import type { SoakRelaySample } from './lib/soak-relay.js'
import type { BenchResult, Measurement } from './lib/report.js'
import type { ClawmatrixNode } from '../src/services/clawmatrix-node.js'

const { ClawmatrixNode: Node } = await importDist<typeof import('../src/services/clawmatrix-node.js')>('services/clawmatrix-node.js')
const { parseConfig } = await importDist<typeof import('../src/config/load.js')>('config/load.js')
const { SECRET_ENV } = await importDist<typeof import('../src/cli/run-node.js')>('cli/run-node.js')

const RELAY_SCRIPT = fileURLToPath(new URL('./lib/soak-relay.js', import.meta.url))

export interface RelaySoakOptions {
  /** How long members churn. */
  minutes: number
  /** How often the relays are sampled. */
  sampleMs: number
  /** Members churning at once against each relay. */
  members: number
  /** Heartbeat (and announce) interval of relay and members; a silent member is dropped after maxMissed. */
  heartbeatMs: number
  maxMissed: number
  /**
   * What the relay with every fix is run beside: 'sockets', a relay without
   * the socket fix; 'memory', relays with the allocator and heap knobs of
   * MEMORY_RELAYS.
   */
  compare: 'sockets' | 'memory'
  progress: (line: string) => void
}

export const SOAK_DEFAULTS: Omit<RelaySoakOptions, 'progress'> = { minutes: 60, sampleMs: 60_000, members: 4, heartbeatMs: 2_000, maxMissed: 3, compare: 'sockets' }
export const SOAK_QUICK: Omit<RelaySoakOptions, 'progress'> = { minutes: 2, sampleMs: 20_000, members: 3, heartbeatMs: 1_000, maxMissed: 3, compare: 'sockets' }

/** One relay process of the soak. */
interface RelaySetup {
  name: string
  /** Whether its WebSocket transport releases the sockets of aborted connections (the fix). */
  releaseSockets: boolean
  /** Node flags besides --expose-gc. */
  execArgv?: string[]
  /** Environment besides the secret (the C allocator reads MALLOC_* at start). */
  env?: Record<string, string>
}

const FIXED: RelaySetup = { name: 'released sockets (this fix)', releaseSockets: true }
const SOCKET_RELAYS: RelaySetup[] = [FIXED, { name: 'as published (no fix)', releaseSockets: false }]
/**
 * The defaults beside two knobs an operator has: glibc's arena count, and V8's
 * young generation (each semi-space at most N MiB; the new space is two).
 */
const MEMORY_RELAYS: RelaySetup[] = [
  { name: 'defaults', releaseSockets: true },
  { name: 'MALLOC_ARENA_MAX=2', releaseSockets: true, env: { MALLOC_ARENA_MAX: '2' } },
  { name: '--max-semi-space-size=2', releaseSockets: true, execArgv: ['--max-semi-space-size=2'] }
]

type Departure = 'graceful' | 'reset' | 'silent'
const DEPARTURES: Departure[] = ['graceful', 'reset', 'silent']
const SETTLE_TIMEOUT_MS = 120_000

export async function relaySoakBench (options: RelaySoakOptions): Promise<BenchResult> {
  const env = { ...process.env, [SECRET_ENV]: randomBytes(32).toString('hex') }
  const variants = (options.compare === 'memory' ? MEMORY_RELAYS : SOCKET_RELAYS).map(setup => new SoakVariant(setup, options, env))
  try {
    await Promise.all(variants.map(async v => { await v.start() }))
    for (const v of variants) v.record(await v.relay.sample())
    options.progress(`churn for ${options.minutes} min, ${options.members} members at a time per relay, heartbeat ${options.heartbeatMs} ms x ${options.maxMissed}`)
    const deadline = Date.now() + options.minutes * 60_000
    const churns = variants.map(async v => { await v.churn(deadline) })
    while (Date.now() < deadline) {
      await sleep(Math.min(options.sampleMs, Math.max(0, deadline - Date.now())))
      for (const v of variants) {
        const s = await v.relay.sample()
        v.record(s)
        options.progress(`${v.name}: ${line(s)}; departed ${v.departedTotal()} (${v.departedLine()})`)
      }
    }
    await Promise.all(churns)
    for (const v of variants) {
      // Settled: the silent members' heartbeats have run out and their cards expired.
      const settleStart = Date.now()
      let s = await v.relay.sample()
      while ((s.connections > 0 || s.viewNodes > 1) && Date.now() - settleStart < SETTLE_TIMEOUT_MS) {
        await sleep(2_000)
        s = await v.relay.sample()
      }
      v.record(s)
      options.progress(`${v.name}, settled: ${line(s)}`)
    }
    return result(variants, options)
  } finally {
    await Promise.allSettled(variants.map(async v => { await v.stop() }))
  }
}

class SoakVariant {
  relay!: SoakRelay
  readonly samples: SoakRelaySample[] = []
  readonly departed: Record<Departure, number> = { graceful: 0, reset: 0, silent: 0 }
  private readonly forwarders: Forwarder[] = []
  private stopping = false

  readonly name: string

  constructor (private readonly setup: RelaySetup, private readonly options: RelaySoakOptions, private readonly env: NodeJS.ProcessEnv) {
    this.name = setup.name
  }

  async start (): Promise<void> {
    this.relay = await SoakRelay.start({ ...this.env, ...this.setup.env }, this.setup.execArgv ?? [], { heartbeatMs: this.options.heartbeatMs, maxMissed: this.options.maxMissed, releaseSockets: this.setup.releaseSockets })
    for (let i = 0; i < this.options.members; i++) this.forwarders.push(await Forwarder.start(this.relay.port))
  }

  record (sample: SoakRelaySample): void {
    this.samples.push(sample)
  }

  departedTotal (): number {
    return this.departed.graceful + this.departed.reset + this.departed.silent
  }

  departedLine (): string {
    return DEPARTURES.map(d => `${this.departed[d]} ${d}`).join(', ')
  }

  /** Each forwarder is one member slot: a member at a time joins through it and departs. */
  async churn (deadline: number): Promise<void> {
    await Promise.all(this.forwarders.map(async (forwarder, slot) => {
      for (let cycle = 0; Date.now() < deadline && !this.stopping; cycle++) {
        const departure = DEPARTURES[(cycle + slot) % DEPARTURES.length]!
        await this.member(`m${slot}-${cycle}`, forwarder, departure).catch(err => {
          this.options.progress(`${this.name}: member m${slot}-${cycle} failed: ${err.message}`)
        })
      }
    }))
  }

  private async member (nodeId: string, forwarder: Forwarder, departure: Departure): Promise<void> {
    const stateDir = await mkdtemp(join(tmpdir(), 'clawmatrix-soak-member-'))
    try {
      const config = parseConfig({
        nodeId,
        secret: this.env[SECRET_ENV],
        proxyPort: 0,
        peers: [{ nodeId: 'relay', url: `/ip4/127.0.0.1/tcp/${forwarder.port}/ws/p2p/${this.relay.peerId}` }],
        heartbeat: { intervalMs: this.options.heartbeatMs, maxMissed: this.options.maxMissed },
        reconnect: { minDelayMs: 500, maxDelayMs: 2_000 }
      })
      const member: ClawmatrixNode = await Node.create({ config, stateDir, log: { info: () => {}, warn: () => {} } })
      await member.start()
      try {
        // Joined: the member lists the relay, and has been announced to it a few times over.
        const joinDeadline = Date.now() + 30_000
        while (!member.view.nodes().some(n => n.nodeId === 'relay') && Date.now() < joinDeadline) await sleep(100)
        await sleep(2 * this.options.heartbeatMs)
      } finally {
        if (departure === 'reset') {
          for (const connection of member.swarm.getConnections()) connection.abort(new Error('reset by the soak'))
        } else if (departure === 'silent') {
          forwarder.vanish()
        }
        await member.stop()
      }
      this.departed[departure]++
    } finally {
      await rm(stateDir, { recursive: true, force: true })
    }
  }

  /**
   * Forwarders first: they hold the relay's side of vanished members' sockets open until the relay
   * closes them, which the unfixed relay never does. Then the relay, within CALL_TIMEOUT_MS.
   */
  async stop (): Promise<void> {
    this.stopping = true
    for (const f of this.forwarders) f.close()
    await this.relay?.stop().catch((err: Error) => { this.options.progress(`${this.name}: ${err.message}`) })
  }
}

/** A TCP forwarder to the relay's port, that can make its current connections vanish. */
class Forwarder {
  private readonly pairs = new Set<{ member: Socket, relay: Socket }>()
  /** Relay-side sockets of vanished members: read and never answered, until the relay closes them. */
  private readonly void = new Set<Socket>()

  private constructor (private readonly server: Server, readonly port: number) {}

  static async start (relayPort: number): Promise<Forwarder> {
    const server = createServer()
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const forwarder = new Forwarder(server, (server.address() as { port: number }).port)
    server.on('connection', member => { forwarder.forward(member, relayPort) })
    return forwarder
  }

  private forward (member: Socket, relayPort: number): void {
    const relay = createConnection({ host: '127.0.0.1', port: relayPort })
    const pair = { member, relay }
    this.pairs.add(pair)
    member.pipe(relay)
    relay.pipe(member)
    const end = (): void => {
      this.pairs.delete(pair)
      if (!this.void.has(relay)) relay.destroy()
      member.destroy()
    }
    member.on('error', end).on('close', end)
    relay.on('error', end).on('close', () => { this.void.delete(relay); end() })
  }

  /** The current members vanish: their side is dropped, the relay's side hears nothing more. */
  vanish (): void {
    for (const pair of this.pairs) {
      this.void.add(pair.relay)
      pair.relay.unpipe(pair.member)
      pair.member.unpipe(pair.relay)
      pair.relay.on('data', () => {})
      pair.member.destroy()
    }
    this.pairs.clear()
  }

  close (): void {
    for (const socket of this.void) socket.destroy()
    for (const pair of this.pairs) { pair.member.destroy(); pair.relay.destroy() }
    this.server.close()
  }
}

/** A sample (two full GCs) answers within this; stopping the relay's node too, or the relay is killed. */
const CALL_TIMEOUT_MS = 60_000

/**
 * The relay process. Every call ends: with the answer, when the process
 * exits, or after CALL_TIMEOUT_MS. (Calls used to wait for an answer that
 * never came once the process hung or died, and the bench with them.)
 */
class SoakRelay {
  private nextId = 0
  private readonly pending = new Map<number, (reply: { ok: boolean, result?: any, error?: string }) => void>()
  private readonly exited: Promise<void>

  private constructor (private readonly child: ChildProcess, readonly port: number, readonly peerId: string) {
    child.on('message', (message: { id?: number, ok: boolean }) => {
      if (message.id == null) return
      this.pending.get(message.id)?.(message)
      this.pending.delete(message.id)
    })
    this.exited = new Promise(resolve => child.once('exit', (code, signal) => {
      for (const reply of this.pending.values()) reply({ ok: false, error: `the soak relay exited (${signal ?? code})` })
      this.pending.clear()
      resolve()
    }))
  }

  static async start (env: NodeJS.ProcessEnv, execArgv: string[], options: { heartbeatMs: number, maxMissed: number, releaseSockets: boolean }): Promise<SoakRelay> {
    const child = fork(requireBuilt(RELAY_SCRIPT), [JSON.stringify({ ...options, stopTimeoutMs: CALL_TIMEOUT_MS / 2 })], { execPath: process.execPath, execArgv: ['--expose-gc', ...execArgv], env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    const ready = await new Promise<{ ws: string, peerId: string }>((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', code => { reject(new Error(`the soak relay exited (${code}) before it was ready`)) })
    })
    return new SoakRelay(child, Number(ready.ws.match(/\/tcp\/(\d+)\//)![1]), ready.peerId)
  }

  async sample (): Promise<SoakRelaySample> {
    return this.call('sample')
  }

  /** Stops the relay's node and ends the process; throws (after killing it) when the node did not stop cleanly. */
  async stop (): Promise<void> {
    try {
      await this.call('stop')
    } finally {
      this.child.kill('SIGKILL')
      await this.exited
    }
  }

  private async call (method: 'sample' | 'stop'): Promise<any> {
    if (this.child.exitCode != null || this.child.signalCode != null) throw new Error(`the soak relay exited (${this.child.signalCode ?? this.child.exitCode})`)
    const id = ++this.nextId
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`the soak relay did not answer '${method}' within ${CALL_TIMEOUT_MS / 1000} s`))
      }, CALL_TIMEOUT_MS)
      this.pending.set(id, reply => {
        clearTimeout(timer)
        reply.ok ? resolve(reply.result) : reject(new Error(reply.error))
      })
      this.child.send({ id, method })
    })
  }
}

const MiB = 2 ** 20

function line (s: SoakRelaySample): string {
  const m = s.memory
  const mib = (bytes: number): string => (bytes / MiB).toFixed(1)
  return `RSS ${mib(s.rssBytes)} MiB, heap after GC ${(s.heapAfterGcBytes / MiB).toFixed(2)} MiB (data ${(s.dataAfterGcBytes / MiB).toFixed(2)}), ` +
    `${s.descriptors} descriptors, ${s.connections} connections, peer store ${s.peerStore}, view ${s.viewNodes}; ` +
    `heapTotal ${mib(m.heapTotal)} (new space ${mib(m.spaces.new_space ?? 0)}), external ${mib(m.external)}, arrayBuffers ${mib(m.arrayBuffers)}, ` +
    `RssAnon ${mib(m.rssAnon)}, RssFile ${mib(m.rssFile)}, V8 physical ${mib(m.v8Physical)}, ` +
    `malloc main arena ${mib(m.mainArena)} + ${m.arenas} arenas ${mib(m.arenasResident)}, other anonymous ${mib(m.otherAnonymous)}, ${m.threads} threads, ` +
    `CPU ${s.cpuSeconds.toFixed(1)} s`
}

function result (variants: SoakVariant[], options: RelaySoakOptions): BenchResult {
  const series = (pick: (s: SoakRelaySample) => number, what: string, unit: Measurement['unit']): Measurement => ({
    what,
    unit,
    variants: variants.map(v => ({ name: v.name, samples: v.samples.map(pick), baseline: v === variants[0] })),
    note: variants.map(v => {
      const first = pick(v.samples[0]!)
      const last = pick(v.samples.at(-1)!)
      return `${v.name}: start ${first.toFixed(2)}, end ${last.toFixed(2)} after ${v.departedTotal()} departures (${v.departedLine()}); ` +
        `per sample: ${v.samples.map(s => pick(s).toFixed(unit === 'MiB' ? 1 : 0)).join(' ')}`
    }).join('\n   ')
  })
  return {
    name: 'relay-soak',
    title: `relay under ${options.minutes} min of member churn (join; leave gracefully, by reset, silently in turn; ${options.members} at a time)`,
    measurements: [
      series(s => s.descriptors, 'open descriptors of the relay process, sampled', 'count'),
      series(s => s.connections, 'connections of the relay, sampled', 'count'),
      series(s => s.heapAfterGcBytes / MiB, 'heap after a full GC, sampled', 'MiB'),
      series(s => s.dataAfterGcBytes / MiB, 'heap after a full GC without code and bytecode, sampled', 'MiB'),
      series(s => s.rssBytes / MiB, 'RSS, sampled', 'MiB'),
      series(s => s.cpuSeconds, 'CPU seconds of the relay process since its start, sampled', 's'),
      series(s => s.memory.heapTotal / MiB, 'heapTotal (V8 heap committed, after the GCs), sampled', 'MiB'),
      series(s => (s.memory.spaces.new_space ?? 0) / MiB, 'V8 new space (young generation) physical, sampled', 'MiB'),
      series(s => s.memory.external / MiB, 'external (memory of JS objects outside the heap: buffers), sampled', 'MiB'),
      series(s => s.memory.arrayBuffers / MiB, 'arrayBuffers (ArrayBuffers and Buffers, part of external), sampled', 'MiB'),
      series(s => s.memory.rssAnon / MiB, 'RssAnon (/proc/self/status), sampled', 'MiB'),
      series(s => s.memory.rssFile / MiB, 'RssFile (/proc/self/status), sampled', 'MiB'),
      series(s => s.memory.privateDirty / MiB, 'Private_Dirty (/proc/self/smaps_rollup), sampled', 'MiB'),
      series(s => s.memory.v8Physical / MiB, 'V8 heap physical (all spaces), sampled', 'MiB'),
      series(s => (s.memory.mainArena + s.memory.arenasResident) / MiB, 'glibc malloc arenas resident (main + thread arenas, /proc/self/smaps), sampled', 'MiB'),
      series(s => s.memory.arenas, 'glibc thread arenas, sampled', 'count'),
      series(s => Math.max(0, s.memory.otherAnonymous - s.memory.v8Physical) / MiB, 'other anonymous memory less V8\'s heap (large malloc blocks, stacks, V8 outside its heap), sampled', 'MiB')
    ]
  }
}
