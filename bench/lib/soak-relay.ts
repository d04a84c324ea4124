/**
 * The relay under soak (../relay-soak.ts): one `clawmatrix relay`-like node in
 * its own process, started with --expose-gc so a sample can report the heap
 * after a full collection. Driven over the IPC channel: 'sample' answers the
 * process's figures, 'stop' stops the node. Node flags (--max-semi-space-size)
 * and the allocator's environment (MALLOC_ARENA_MAX) come from the bench.
 *
 * argv[2] is a JSON object: { heartbeatMs, maxMissed, releaseSockets, stopTimeoutMs }. A node
 * that does not stop within stopTimeoutMs is reported with what still keeps
 * the process alive (process.getActiveResourcesInfo()).
 */
import { readdirSync } from 'node:fs'
import { getHeapSpaceStatistics } from 'node:v8'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { importDist } from './dist.js'
import { processMemory, type ProcessMemory } from './process-memory.js'

const { ClawmatrixNode } = await importDist<typeof import('../../src/services/clawmatrix-node.js')>('services/clawmatrix-node.js')
const { parseConfig } = await importDist<typeof import('../../src/config/load.js')>('config/load.js')
const { SECRET_ENV } = await importDist<typeof import('../../src/cli/run-node.js')>('cli/run-node.js')

export interface SoakRelaySample {
  at: number
  rssBytes: number
  heapAfterGcBytes: number
  /** The same without compiled code and bytecode, which grow with uptime rather than with what the relay keeps. */
  dataAfterGcBytes: number
  descriptors: number
  connections: number
  peerStore: number
  /** Nodes in the relay's cluster view, itself included. */
  viewNodes: number
  /** Where the resident memory is, after the GCs: Node's, the kernel's, V8's and the allocator's figures. */
  memory: ProcessMemory
  /** CPU seconds (user + system) the relay process used since it started: what a memory knob costs. */
  cpuSeconds: number
}

const options = JSON.parse(process.argv[2] ?? '{}') as { heartbeatMs: number, maxMissed: number, releaseSockets: boolean, stopTimeoutMs: number }
const gc = (globalThis as { gc?: () => void }).gc
if (gc == null) throw new Error('the soak relay needs node --expose-gc')

const stateDir = await mkdtemp(join(tmpdir(), 'clawmatrix-soak-relay-'))
const config = parseConfig({
  nodeId: 'relay',
  secret: process.env[SECRET_ENV],
  listen: true,
  listenHost: '127.0.0.1',
  listenPort: 0,
  proxyPort: 0,
  heartbeat: { intervalMs: options.heartbeatMs, maxMissed: options.maxMissed }
})
const quiet = { info: () => {}, warn: () => {} }
const node = await ClawmatrixNode.create({ config, stateDir, log: quiet, swarm: { releaseSockets: options.releaseSockets } })
await node.start()
const ws = node.swarm.getMultiaddrs().map(String).find(a => a.includes('/ws/') && !a.includes('p2p-circuit'))

function cpuSeconds (): number {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

async function sample (): Promise<SoakRelaySample> {
  // Twice: the first collection can leave garbage that finalizers only just released.
  gc!()
  await new Promise(resolve => setImmediate(resolve))
  gc!()
  return {
    at: Date.now(),
    rssBytes: process.memoryUsage.rss(),
    heapAfterGcBytes: process.memoryUsage().heapUsed,
    dataAfterGcBytes: getHeapSpaceStatistics().filter(space => !/code|trusted/.test(space.space_name)).reduce((sum, space) => sum + space.space_used_size, 0),
    descriptors: readdirSync('/proc/self/fd').length,
    connections: node.swarm.getConnections().length,
    peerStore: (await node.swarm.peerStore.all()).length,
    viewNodes: node.view.nodes().length,
    memory: processMemory(),
    cpuSeconds: cpuSeconds()
  }
}

/** Stops the node, or says what is still open when it takes longer than `ms`. */
async function stopWithin (ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const active = process.getActiveResourcesInfo().reduce<Record<string, number>>((counts, name) => ({ ...counts, [name]: (counts[name] ?? 0) + 1 }), {})
      reject(new Error(`the relay's node did not stop within ${ms / 1000} s; still active: ${Object.entries(active).map(([name, n]) => `${n} ${name}`).join(', ')}`))
    }, ms)
  })
  try {
    await Promise.race([node.stop(), late])
  } finally {
    clearTimeout(timer)
  }
}

process.on('message', (message: { id: number, method: 'sample' | 'stop' }) => {
  void (async () => {
    try {
      if (message.method === 'sample') {
        process.send!({ id: message.id, ok: true, result: await sample() })
      } else {
        await stopWithin(options.stopTimeoutMs)
        await rm(stateDir, { recursive: true, force: true })
        process.send!({ id: message.id, ok: true, result: null })
      }
    } catch (err: any) {
      process.send!({ id: message.id, ok: false, error: err.message })
    }
  })()
})
process.on('disconnect', () => { process.exit(0) })
process.send!({ ready: true, ws, peerId: node.peerId.toString() })
