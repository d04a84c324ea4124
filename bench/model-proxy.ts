/**
 * The model proxy against calling the upstream directly, side by side in one
 * run with the same client (fetch, the body read as it arrives):
 *
 * 1. time to first byte and total time of a short streamed answer: direct to
 *    the upstream, through the proxy of a node that hosts the model itself
 *    (no mesh), one hop (host reached directly), relayed (host reached
 *    through a relay);
 * 2. chunks per second of a long answer on the same four paths;
 * 3. 100 concurrent streams with a paced upstream, direct, one hop and relayed;
 *    one hop and relayed also through a second proxy node that keeps its
 *    model streams between requests (modelRouting.reuseStreams, the default;
 *    the first proxy node turns it off), and through a third that keeps them
 *    with the old room of 4 idle streams per host, which a burst outgrows;
 * 4. CPU per streamed request, from /proc, of every process on the path;
 * 5. requests per second of small non-streamed answers, 32 at a time;
 * 6. idle CPU of each process (no requests), from /proc.
 *
 * Portkey's gateway (@portkey-ai/gateway, ./lib/portkey.ts) runs beside
 * them as the yardstick: as shipped, and without its 25 ms wait before a
 * stream's first event.
 *
 * Every party is its own process: a fake OpenAI upstream, a relay, the node
 * whose proxy the client calls (dial-out only), a listening host and a
 * dial-out host behind the relay (the real CLI `node` from dist/).
 * Variants are interleaved sample by sample so drift hits them alike.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { spawnNodeUntilReady, type ReadyChild } from './lib/child.js'
import { importDist } from './lib/dist.js'
import { CLI, requireBuilt } from './lib/paths.js'
import { waitFor } from './lib/wait.js'
import { cpuMs, installPortkey, portkeyHeaders, PORTKEY_VERSION, startPortkey } from './lib/portkey.js'
import type { BenchResult, Measurement, Variant } from './lib/report.js'
import type { NodeStatus } from '../src/services/status.js'

const { SECRET_ENV } = await importDist<typeof import('../src/cli/run-node.js')>('cli/run-node.js')

export interface ModelProxyBenchOptions {
  /** Sequential short streams per path, after `warmup` unrecorded ones. */
  requests: number
  warmup: number
  /** Chunks of the short answer. */
  shortChunks: number
  /** Long answers per path, and their chunks. */
  longRuns: number
  longChunks: number
  /** Concurrent streams per round, rounds per path, and the upstream's pause before each chunk. */
  concurrency: number
  rounds: number
  pacedChunks: number
  paceMs: number
  /** CPU: rounds per path, streamed requests per round. */
  cpuRounds: number
  cpuRequests: number
  /** Throughput: rounds per path, concurrent clients, requests per client per round. */
  throughputRounds: number
  throughputClients: number
  throughputRequests: number
  /** Idle CPU: rounds, and the seconds of each. */
  idleRounds: number
  idleSeconds: number
  progress: (line: string) => void
}

export const MODEL_PROXY_DEFAULTS: Omit<ModelProxyBenchOptions, 'progress'> = {
  requests: 300, warmup: 20, shortChunks: 20, longRuns: 5, longChunks: 5_000, concurrency: 100, rounds: 2, pacedChunks: 20, paceMs: 10,
  cpuRounds: 5, cpuRequests: 50, throughputRounds: 3, throughputClients: 32, throughputRequests: 10, idleRounds: 3, idleSeconds: 10
}
/** Enough to see that every part works, in about 15 s; the figures mean little. */
export const MODEL_PROXY_QUICK: Omit<ModelProxyBenchOptions, 'progress'> = {
  requests: 10, warmup: 2, shortChunks: 20, longRuns: 2, longChunks: 1_000, concurrency: 20, rounds: 1, pacedChunks: 10, paceMs: 10,
  cpuRounds: 1, cpuRequests: 20, throughputRounds: 1, throughputClients: 32, throughputRequests: 5, idleRounds: 1, idleSeconds: 2
}

export const DIRECT = 'direct to the upstream'
export const LOCAL = 'proxy, model on this node'
export const ONE_HOP = 'proxy, one hop'
const RELAYED = 'proxy, relayed'
export const ONE_HOP_KEPT = 'proxy, one hop, kept streams'
const RELAYED_KEPT = 'proxy, relayed, kept streams'
const ONE_HOP_KEPT_4 = 'proxy, one hop, kept streams, room for 4'
const RELAYED_KEPT_4 = 'proxy, relayed, kept streams, room for 4'
/** Paths measured only under concurrency: the pool's old room, beside the new. */
const BURST_ONLY = new Set([ONE_HOP_KEPT_4, RELAYED_KEPT_4])
const PORTKEY = `Portkey ${PORTKEY_VERSION}`
const PORTKEY_NO_WAIT = `Portkey ${PORTKEY_VERSION}, no 25 ms wait`
const REQUEST_TIMEOUT_MS = 60_000

/** Where the client sends a request for each variant: a base URL and the model name there. */
export interface Path {
  name: string
  baseUrl: string
  model: string
  headers?: Record<string, string>
  /** The processes that do the path's work (the upstream and the client aside), for CPU. */
  pids: number[]
}

/** Timings of one streamed answer, from just before fetch(). */
interface StreamTiming {
  firstByteMs: number
  totalMs: number
  events: number
}

/**
 * The fake upstream answers `max_tokens` chunks, pausing `bench_delay_ms`
 * before each: the proxy passes both fields through untouched.
 */
const UPSTREAM_SCRIPT = `
const { FakeOpenAIServer } = await import(${JSON.stringify(pathToFileURL(requireBuilt(fileURLToPath(new URL('../test/fixtures/fake-upstream/index.js', import.meta.url)))).href)})
const server = new FakeOpenAIServer({
  models: ['bench'],
  reply: request => ({
    chunks: Array.from({ length: request.body?.max_tokens ?? 20 }, (_, i) => ' token' + i),
    delayMs: request.body?.bench_delay_ms ?? 0
  })
})
await server.start()
// Idle keep-alive sockets closed by the server race with their reuse on a loaded machine
// (UND_ERR_SOCKET "other side closed"): a real upstream's problem, not what is measured here.
server.server.keepAliveTimeout = 120_000
process.stderr.write('upstream at ' + server.url + '\\n')
`

export async function modelProxyBench (options: ModelProxyBenchOptions): Promise<BenchResult> {
  const secret = randomBytes(32).toString('hex')
  const dir = await mkdtemp(join(tmpdir(), 'clawmatrix-bench-model-'))
  const children: ReadyChild[] = []
  try {
    options.progress('starting the upstream, a relay, the proxy node and two hosts')
    const paths = await startCluster(secret, dir, children, options.progress)
    // Every process but the upstream, named after its role (the node ids of startCluster).
    const processes: Array<{ name: string, pid: number }> = [
      { name: 'proxy node', pid: paths.find(p => p.name === LOCAL)!.pids[0]! },
      { name: 'host-direct node', pid: paths.find(p => p.name === ONE_HOP)!.pids[1]! },
      { name: 'relay', pid: paths.find(p => p.name === RELAYED)!.pids[1]! },
      { name: 'host-relayed node', pid: paths.find(p => p.name === RELAYED)!.pids[2]! }
    ]
    const gateway = await installPortkey(options.progress)
    for (const [name, noWait] of [[PORTKEY, false], [PORTKEY_NO_WAIT, true]] as const) {
      const portkey = await startPortkey(gateway, noWait)
      children.push(portkey.child)
      paths.push({ name, baseUrl: portkey.url, model: 'bench', headers: portkeyHeaders(paths[0]!.baseUrl), pids: [portkey.child.pid] })
      if (!noWait) processes.push({ name, pid: portkey.child.pid })
    }
    const measurements: Measurement[] = []
    measurements.push(await idleCpu(options, processes))
    const everywhere = paths.filter(p => !BURST_ONLY.has(p.name))
    measurements.push(...await shortStreams(options, everywhere))
    measurements.push(await longStreams(options, everywhere))
    measurements.push(...await concurrentStreams(options, paths.filter(p => p.name !== LOCAL && p.name !== PORTKEY)))
    measurements.push(await cpuPerRequest(options, everywhere.filter(p => p.name !== DIRECT)))
    measurements.push(await throughput(options, everywhere.filter(p => p.name !== PORTKEY_NO_WAIT)))
    return { name: 'model-proxy', title: 'model proxy vs calling the upstream directly and vs Portkey\'s gateway (streamed chat completions)', measurements }
  } finally {
    await Promise.allSettled(children.reverse().map(async child => { await child.stop() }))
    await rm(dir, { recursive: true, force: true })
  }
}

/** The processes, and the four ways to the same upstream. */
export async function startCluster (secret: string, dir: string, children: ReadyChild[], progress: (line: string) => void): Promise<Path[]> {
  const env = { ...process.env, [SECRET_ENV]: secret }
  const upstream = await spawnNodeUntilReady(['--input-type=module', '-e', UPSTREAM_SCRIPT], { ready: /upstream at (\S+)/ })
  children.push(upstream)
  const upstreamUrl = upstream.match[1]!
  const model = (id: string): Record<string, unknown> => ({ id, provider: 'vllm', baseUrl: upstreamUrl, upstreamModel: 'bench' })

  const started = /started: peer id (\S+); listening on ([^;\n]+); status at (\S+)\/clawmatrix\/status/
  const relay = await spawnNodeUntilReady([requireBuilt(CLI), 'relay', '--listen-host', '127.0.0.1', '--listen-port', '0', '--proxy-port', '0', '--state-dir', join(dir, 'relay')], { ready: started, env })
  children.push(relay)
  const relayAddress = relay.match[2]!.split(', ').find(a => a.includes('/ws') && !a.includes('p2p-circuit'))!
  const peers = [{ nodeId: 'relay', url: relayAddress }]
  const node = async (nodeId: string, config: Record<string, unknown>): Promise<ReadyChild> => {
    const file = join(dir, `${nodeId}.json`)
    await writeFile(file, JSON.stringify({ nodeId, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, peers, ...config }))
    const child = await spawnNodeUntilReady([requireBuilt(CLI), 'node', '--config', file, '--state-dir', join(dir, nodeId)], { ready: started, env })
    children.push(child)
    return child
  }
  const hostDirect = await node('host-direct', { listen: true, models: [model('bench-direct')] })
  // One reservation, on the configured relay: with two, host-relayed also held one on host-direct (a listening
  // node relays too) and could list that circuit first, and the relayed rows then crossed host-direct instead.
  const hostRelayed = await node('host-relayed', { models: [model('bench-relayed')], mesh: { relays: 1 } })
  // A stream per request (/clawmatrix/model/1.0.0), the baseline for kept streams.
  const proxy = await node('proxy', { models: [model('bench-local')], modelRouting: { reuseStreams: false } })
  const proxyUrl = proxy.match[3]!
  // The same node with model streams kept between requests (modelRouting.reuseStreams), beside it in the same run.
  const kept = await node('proxy-kept', { modelRouting: { reuseStreams: true } })
  const keptUrl = kept.match[3]!
  // Kept streams with the pool's room before 128 (4 idle per host): what a burst of 100 did then.
  const kept4 = await node('proxy-kept-4', { modelRouting: { reuseStreams: true, idleStreamsPerHost: 4 } })
  const kept4Url = kept4.match[3]!

  for (const url of [proxyUrl, keptUrl, kept4Url]) {
    await waitFor('the proxy nodes to reach one host directly and the other through the relay', async () => {
      const status = await (await fetch(`${url}/clawmatrix/status`)).json() as NodeStatus
      const reach = Object.fromEntries(status.cluster.map(n => [n.nodeId, n.reach]))
      return reach['host-direct'] === 'direct' && reach['host-relayed'] === 'relayed'
    }, { timeoutMs: 30_000, intervalMs: 100 })
  }

  await pinnedToRelay([proxyUrl, keptUrl, kept4Url], relay.match[1]!, progress)

  return [
    { name: DIRECT, baseUrl: upstreamUrl, model: 'bench', pids: [] },
    { name: LOCAL, baseUrl: `${proxyUrl}/v1`, model: 'bench-local', pids: [proxy.pid] },
    { name: ONE_HOP, baseUrl: `${proxyUrl}/v1`, model: 'clawmatrix/bench-direct', pids: [proxy.pid, hostDirect.pid] },
    { name: RELAYED, baseUrl: `${proxyUrl}/v1`, model: 'clawmatrix/bench-relayed', pids: [proxy.pid, relay.pid, hostRelayed.pid] },
    { name: ONE_HOP_KEPT, baseUrl: `${keptUrl}/v1`, model: 'clawmatrix/bench-direct', pids: [kept.pid, hostDirect.pid] },
    { name: RELAYED_KEPT, baseUrl: `${keptUrl}/v1`, model: 'clawmatrix/bench-relayed', pids: [kept.pid, relay.pid, hostRelayed.pid] },
    { name: ONE_HOP_KEPT_4, baseUrl: `${kept4Url}/v1`, model: 'clawmatrix/bench-direct', pids: [kept4.pid, hostDirect.pid] },
    { name: RELAYED_KEPT_4, baseUrl: `${kept4Url}/v1`, model: 'clawmatrix/bench-relayed', pids: [kept4.pid, relay.pid, hostRelayed.pid] }
  ]
}

/**
 * Checks that each proxy node reaches host-relayed through the bench's
 * relay (one request opens the connection, whose address names the relay),
 * since the relayed rows' CPU counts that relay's process; says so loudly
 * when not.
 */
async function pinnedToRelay (proxyUrls: string[], relayPeerId: string, progress: (line: string) => void): Promise<void> {
  for (const url of proxyUrls) {
    await stream({ name: 'relayed, first request', baseUrl: `${url}/v1`, model: 'clawmatrix/bench-relayed', pids: [] }, 1)
    const status = await (await fetch(`${url}/clawmatrix/status`)).json() as NodeStatus
    const host = status.cluster.find(n => n.nodeId === 'host-relayed')
    const connection = status.peers.find(p => p.peerId === host?.peerId)
    if (connection?.relayed !== true || !connection.address.includes(`/p2p/${relayPeerId}/p2p-circuit`)) {
      progress(`WARNING: ${url} reaches host-relayed at ${connection?.address ?? '(no connection)'}, not through the relay ${relayPeerId}: the relayed CPU rows count the wrong relay`)
    }
  }
}

/** One streamed chat completion, read as it arrives; fails unless it ended with [DONE]. */
async function stream (path: Path, chunks: number, delayMs = 0): Promise<StreamTiming> {
  const start = performance.now()
  const response = await fetch(`${path.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...path.headers },
    body: JSON.stringify({ model: path.model, stream: true, max_tokens: chunks, bench_delay_ms: delayMs, messages: [{ role: 'user', content: 'bench' }] }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  if (!response.ok || response.body == null) throw new Error(`${path.name}: HTTP ${response.status} ${await response.text()}`)
  let firstByteMs: number | undefined
  let tail = ''
  let events = 0
  const decoder = new TextDecoder()
  for await (const bytes of response.body) {
    firstByteMs ??= performance.now() - start
    // Events end with a blank line, which may be split across two reads.
    const text = tail.slice(-1) + decoder.decode(bytes, { stream: true })
    events += text.split('\n\n').length - 1
    tail = (tail.slice(0, -1) + text).slice(-32)
  }
  const totalMs = performance.now() - start
  if (!tail.endsWith('data: [DONE]\n\n')) throw new Error(`${path.name}: the stream did not end with [DONE]`)
  // head + chunks + finish + [DONE]
  if (events !== chunks + 3) throw new Error(`${path.name}: ${events} events, expected ${chunks + 3}`)
  return { firstByteMs: firstByteMs!, totalMs, events }
}

async function shortStreams (options: ModelProxyBenchOptions, paths: Path[]): Promise<Measurement[]> {
  options.progress(`short streams: ${options.warmup} warm-up + ${options.requests} per path, ${options.shortChunks} chunks each`)
  const firstByte = new Map(paths.map(p => [p.name, [] as number[]]))
  const total = new Map(paths.map(p => [p.name, [] as number[]]))
  for (let i = -options.warmup; i < options.requests; i++) {
    for (const path of rotate(paths, i)) {
      const timing = await stream(path, options.shortChunks)
      if (i < 0) continue
      firstByte.get(path.name)!.push(timing.firstByteMs)
      total.get(path.name)!.push(timing.totalMs)
    }
  }
  const note = 'sequential requests; the fake upstream sends the role chunk at once, then the chunks without pause'
  return [
    { what: `time to first byte of a streamed answer (${options.shortChunks} chunks)`, unit: 'ms', variants: variants(paths, firstByte), note },
    { what: `total time of the same streamed answers, to data: [DONE]`, unit: 'ms', variants: variants(paths, total), note }
  ]
}

async function longStreams (options: ModelProxyBenchOptions, paths: Path[]): Promise<Measurement> {
  options.progress(`long streams: 1 warm-up + ${options.longRuns} per path, ${options.longChunks} chunks each`)
  const rates = new Map(paths.map(p => [p.name, [] as number[]]))
  for (let i = -1; i < options.longRuns; i++) {
    for (const path of rotate(paths, i)) {
      const timing = await stream(path, options.longChunks)
      if (i >= 0) rates.get(path.name)!.push(options.longChunks / (timing.totalMs / 1000))
    }
  }
  return {
    what: `chunks per second of a ${options.longChunks}-chunk streamed answer`,
    unit: 'chunks/s',
    variants: variants(paths, rates),
    note: 'each chunk is one SSE event of ~150 bytes, as a model streams tokens; the upstream sends as fast as it is read'
  }
}

async function concurrentStreams (options: ModelProxyBenchOptions, paths: Path[]): Promise<Measurement[]> {
  options.progress(`concurrent streams: ${options.rounds} rounds of ${options.concurrency} per path`)
  const firstByte = new Map(paths.map(p => [p.name, [] as number[]]))
  const total = new Map(paths.map(p => [p.name, [] as number[]]))
  const wall = new Map(paths.map(p => [p.name, [] as number[]]))
  for (let round = -1; round < options.rounds; round++) {
    for (const path of rotate(paths, round)) {
      const start = performance.now()
      const timings = await Promise.all(Array.from({ length: options.concurrency }, async () => stream(path, options.pacedChunks, options.paceMs)))
      if (round < 0) continue
      wall.get(path.name)!.push(performance.now() - start)
      for (const timing of timings) {
        firstByte.get(path.name)!.push(timing.firstByteMs)
        total.get(path.name)!.push(timing.totalMs)
      }
    }
  }
  const pacing = `${options.pacedChunks} chunks, the upstream pausing ${options.paceMs} ms before each (a model at ${Math.round(1000 / options.paceMs)} tokens/s)`
  return [
    { what: `${options.concurrency} concurrent streams: time to first byte of each`, unit: 'ms', variants: variants(paths, firstByte), note: pacing },
    { what: `${options.concurrency} concurrent streams: total time of each`, unit: 'ms', variants: variants(paths, total), note: `${pacing}; the floor is ${options.pacedChunks * options.paceMs} ms` },
    { what: `${options.concurrency} concurrent streams: until the last one ended`, unit: 'ms', variants: variants(paths, wall), note: `one sample per round (${options.rounds} rounds)` }
  ]
}

/** One small non-streamed chat completion; fails unless it is whole JSON. */
async function whole (path: Path): Promise<void> {
  const response = await fetch(`${path.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...path.headers },
    body: JSON.stringify({ model: path.model, max_tokens: 5, messages: [{ role: 'user', content: 'bench' }] }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${path.name}: HTTP ${response.status} ${text.slice(0, 200)}`)
  JSON.parse(text)
}

/**
 * CPU time the path's processes spent per streamed request: each round runs
 * one path alone, sequentially, and reads utime + stime from /proc before
 * and after. Idle work in the same processes (timers, heartbeats) counts
 * too, spread over the round.
 */
async function cpuPerRequest (options: ModelProxyBenchOptions, paths: Path[]): Promise<Measurement> {
  options.progress(`CPU per request: ${options.cpuRounds} rounds of ${options.cpuRequests} streamed requests per path`)
  const samples = new Map(paths.map(p => [p.name, [] as number[]]))
  for (let round = -1; round < options.cpuRounds; round++) {
    for (const path of rotate(paths, round)) {
      const before = await Promise.all(path.pids.map(cpuMs))
      for (let i = 0; i < options.cpuRequests; i++) await stream(path, options.shortChunks)
      const after = await Promise.all(path.pids.map(cpuMs))
      const spent = after.reduce((sum, ms, i) => sum + ms - before[i]!, 0)
      if (round >= 0) samples.get(path.name)!.push(spent / options.cpuRequests)
    }
  }
  const local = paths.find(p => p.name === LOCAL)!
  return {
    what: `CPU per streamed request (${options.shortChunks} chunks), every process on the path`,
    unit: 'ms',
    variants: paths.map(p => ({ name: p.name, samples: samples.get(p.name)!, baseline: p === local })),
    note: `one sample per round of ${options.cpuRequests} sequential requests; /proc utime+stime at 10 ms resolution; one hop = proxy node + host, relayed = proxy node + relay + host`
  }
}

/**
 * CPU each process spends with no request at all (heartbeats, gossip,
 * announcements, timers), before any request: utime + stime over a quiet
 * stretch, per second.
 */
async function idleCpu (options: ModelProxyBenchOptions, processes: Array<{ name: string, pid: number }>): Promise<Measurement> {
  options.progress(`idle CPU: ${options.idleRounds} rounds of ${options.idleSeconds} s without requests`)
  const samples = new Map(processes.map(p => [p.name, [] as number[]]))
  for (let round = 0; round < options.idleRounds; round++) {
    const before = await Promise.all(processes.map(async p => cpuMs(p.pid)))
    await new Promise(resolve => setTimeout(resolve, options.idleSeconds * 1000))
    const after = await Promise.all(processes.map(async p => cpuMs(p.pid)))
    processes.forEach((p, i) => samples.get(p.name)!.push((after[i]! - before[i]!) / options.idleSeconds))
  }
  return {
    what: 'idle CPU per process, no requests',
    unit: 'ms/s',
    variants: processes.map(p => ({ name: p.name, samples: samples.get(p.name)! })),
    note: `one sample per ${options.idleSeconds} s round; /proc utime+stime at 10 ms resolution; the cluster formed just before`
  }
}

/** Small non-streamed requests, `throughputClients` at a time: requests per second per round. */
async function throughput (options: ModelProxyBenchOptions, paths: Path[]): Promise<Measurement> {
  const { throughputClients: clients, throughputRequests: each } = options
  options.progress(`throughput: ${options.throughputRounds} rounds of ${clients} clients x ${each} small non-streamed requests per path`)
  const samples = new Map(paths.map(p => [p.name, [] as number[]]))
  for (let round = -1; round < options.throughputRounds; round++) {
    for (const path of rotate(paths, round)) {
      const start = performance.now()
      await Promise.all(Array.from({ length: clients }, async () => {
        for (let i = 0; i < each; i++) await whole(path)
      }))
      if (round >= 0) samples.get(path.name)!.push(clients * each / ((performance.now() - start) / 1000))
    }
  }
  return {
    what: `requests per second, ${clients} clients at once, small non-streamed answers`,
    unit: 'req/s',
    variants: variants(paths, samples),
    note: `one sample per round of ${clients * each} requests; the client shares the machine's two cores with every process`
  }
}

/** The paths in a different order each iteration, so none always follows the same one. */
function rotate<T> (items: T[], i: number): T[] {
  const k = ((i % items.length) + items.length) % items.length
  return [...items.slice(k), ...items.slice(0, k)]
}

function variants (paths: Path[], samples: Map<string, number[]>): Variant[] {
  return paths.map(p => ({ name: p.name, samples: samples.get(p.name)!, baseline: p.name === DIRECT }))
}
