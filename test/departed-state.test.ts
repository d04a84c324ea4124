/**
 * State a relay keeps for members that left is bounded and aged out: after
 * hundreds of members with fresh identities joined and left (gracefully, or
 * by a reset followed by their card expiring), the relay's heap after a full
 * GC and its open descriptors stay flat. The relay runs in its own process
 * (test/fixtures/gc-relay.mjs, --expose-gc); the members are real nodes in
 * this one, each with a new peer key.
 *
 * Flat means: over the second half of the churn the heap (its data, without
 * compiled code) grows by far less than the ~7 KiB per member that was left
 * behind before the state was bounded; the first half includes the bounded
 * memories (departed names, replay guards) filling up.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config/load.js'
import { ClawmatrixNode } from '../src/services/clawmatrix-node.js'
import { SECRET } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const RELAY = fileURLToPath(new URL('./fixtures/gc-relay.mjs', import.meta.url))
/** The relay's: tolerant of a loaded machine. A member announces more often, so the relay lists it sooner. */
const RELAY_HEARTBEAT = { intervalMs: 1_000, maxMissed: 5 }
const MEMBER_HEARTBEAT = { intervalMs: 400, maxMissed: 10 }
/** Members per half of the churn, and how many join at once. */
const HALF = 60
const AT_ONCE = 8
const KiB = 1024
const MiB = 1024 * KiB

interface Sample {
  heapAfterGcBytes: number
  /** The heap without code and bytecode (V8 compiles more of it the longer a process runs). */
  dataAfterGcBytes: number
  descriptors: number
  connections: number
  peerStore: number
  viewNodes: number
  reservations: number
  gossipScores: number
}

const mib = (bytes: number): string => (bytes / MiB).toFixed(2)
const perMember = (bytes: number): string => `${(bytes / KiB).toFixed(0)} KiB (${(bytes / HALF / KiB).toFixed(2)} KiB per member)`

/** The relay process, driven over IPC. */
class GcRelay {
  private nextId = 0
  private readonly pending = new Map<number, (reply: { ok: boolean, result?: any, error?: string }) => void>()
  readonly exited: Promise<void>

  private constructor (readonly child: ChildProcess, readonly address: string) {
    child.on('message', (message: { id?: number, ok: boolean }) => {
      if (message.id == null) return
      this.pending.get(message.id)?.(message)
      this.pending.delete(message.id)
    })
    this.exited = new Promise(resolve => child.once('exit', () => {
      for (const reply of this.pending.values()) reply({ ok: false, error: `the relay exited (${child.exitCode ?? child.signalCode})` })
      this.pending.clear()
      resolve()
    }))
  }

  static async start (config: Record<string, unknown>): Promise<GcRelay> {
    // V8 drops the bytecode of functions idle for a while, which moves the heap by a MiB either way: not here.
    const child = fork(RELAY, [JSON.stringify(config)], { execArgv: ['--expose-gc', '--no-flush-bytecode'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    const ready = await new Promise<{ ws: string }>((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', code => { reject(new Error(`the relay exited (${code}) before it was ready`)) })
    })
    return new GcRelay(child, ready.ws)
  }

  async sample (): Promise<Sample> {
    return this.call('sample')
  }

  async knows (nodeId: string): Promise<boolean> {
    return this.call('knows', nodeId)
  }

  async stop (): Promise<void> {
    if (this.child.exitCode != null || this.child.signalCode != null) return
    await Promise.race([this.call('stop').catch(() => {}), this.exited])
    this.child.kill('SIGKILL')
    await this.exited
  }

  private async call (method: string, arg?: string): Promise<any> {
    const id = ++this.nextId
    return new Promise((resolve, reject) => {
      this.pending.set(id, reply => { reply.ok ? resolve(reply.result) : reject(new Error(reply.error)) })
      this.child.send({ id, method, arg })
    })
  }
}

let relay: GcRelay | undefined
afterAll(async () => { await relay?.stop() })

/** One member with a fresh identity: joins the relay, is seen by it, and leaves. */
async function member (nodeId: string, departure: 'graceful' | 'reset'): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'clawmatrix-churn-'))
  try {
    const config = parseConfig({
      nodeId,
      secret: SECRET,
      proxyPort: 0,
      peers: [{ nodeId: 'relay', url: relay!.address }],
      heartbeat: MEMBER_HEARTBEAT,
      reconnect: { minDelayMs: 200, maxDelayMs: 1_000 }
    })
    const node = await ClawmatrixNode.create({ config, stateDir, log: { info: () => {}, warn: () => {} } })
    await node.start()
    try {
      await waitFor(`the relay to list ${nodeId}`, async () => relay!.knows(nodeId), { timeoutMs: 60_000, intervalMs: 100 })
        .catch((err: Error) => {
          throw new Error(`${err.message}; ${nodeId} has ${node.swarm.getConnections().length} connections, lists ${node.view.nodes().map(n => n.nodeId).join(', ')}; dialer: ${JSON.stringify(node.dialer.list())}`)
        })
    } finally {
      if (departure === 'reset') {
        for (const connection of node.swarm.getConnections()) connection.abort(new Error('reset by the test'))
      }
      await node.stop()
    }
  } finally {
    await rm(stateDir, { recursive: true, force: true })
  }
}

async function churn (from: number, count: number): Promise<void> {
  let next = from
  await Promise.all(Array.from({ length: AT_ONCE }, async () => {
    while (next < from + count) {
      const i = next++
      await member(`m${i}`, i % 2 === 0 ? 'graceful' : 'reset')
    }
  }))
}

/** The relay once every member is gone: no connection, no card but its own. */
async function settled (): Promise<Sample> {
  let last: Sample | undefined
  // Gossipsub keeps a departed peer's score for GOSSIP_SCORE_RETAIN_MS: waited for too.
  await waitFor('the relay to forget the departed members', async () => {
    last = await relay!.sample()
    return last.connections === 0 && last.viewNodes === 1 && last.gossipScores === 0
  }, { timeoutMs: 60_000, intervalMs: 500 }).catch((err: Error) => { throw new Error(`${err.message}; last sample: ${JSON.stringify(last)}`) })
  return last!
}

describe('state kept for departed members', { timeout: 600_000 }, () => {
  it('is bounded: heap after GC and descriptors stay flat while fresh members join and leave', async () => {
    relay = await GcRelay.start({ secret: SECRET, heartbeat: RELAY_HEARTBEAT })
    // Warm-up: code paths compiled, pools and caches at their working size.
    await churn(0, 20)
    const start = await settled()
    await churn(1000, HALF)
    const half = await settled()
    await churn(2000, HALF)
    const end = await settled()

    const figures = [start, half, end].map(s => `heap ${mib(s.heapAfterGcBytes)} MiB (data ${mib(s.dataAfterGcBytes)}), ${s.descriptors} fds, ` +
      `peer store ${s.peerStore}, reservations ${s.reservations}, gossip scores ${s.gossipScores}`)
    const firstHalf = half.dataAfterGcBytes - start.dataAfterGcBytes
    const secondHalf = end.dataAfterGcBytes - half.dataAfterGcBytes
    console.log(`departed-state churn, ${HALF} members per half:\n  start: ${figures[0]}\n  half:  ${figures[1]}\n  end:   ${figures[2]}\n` +
      `  data heap: first half ${perMember(firstHalf)}, second half ${perMember(secondHalf)}`)

    // Per-peer records that outlived their peer before: none is left once the members are gone.
    expect(end.peerStore).toBe(0)
    expect(end.reservations).toBe(0)
    expect(end.gossipScores).toBe(0)
    // Flat: unbounded state cost 7-10 KiB per departed member (docs/benchmarks.md); what is left is the
    // bounded memories filling (departed names, replay guards) and gossip's two-minute caches.
    expect(secondHalf).toBeLessThan(HALF * 5 * KiB)
    expect(end.descriptors).toBeLessThanOrEqual(start.descriptors + 2)
  })
})
