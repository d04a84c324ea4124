/**
 * Where one streamed request's time to first byte goes, stage by stage:
 * the processes of bench/model-proxy.ts (and Portkey's gateway without its
 * 25 ms wait) run with a preloaded subscriber (./lib/latency-trace.mjs) that
 * records clawmatrix's stage marks (src/services/wire/trace.ts), Node's
 * HTTP server and fetch() events, on one clock; sequential requests,
 * interleaved path by path, then each mark's offset from the client's
 * fetch() call, median over the requests.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { installPortkey, portkeyHeaders, startPortkey } from './lib/portkey.js'
import { summarize } from './lib/stats.js'
import { DIRECT, LOCAL, ONE_HOP_KEPT, startCluster, type Path } from './model-proxy.js'
import type { ReadyChild } from './lib/child.js'
import type { BenchResult, Measurement } from './lib/report.js'

export interface ModelProxyTraceOptions {
  /** Sequential requests per path, after `warmup` unrecorded ones. */
  requests: number
  warmup: number
  chunks: number
  progress: (line: string) => void
}

export const MODEL_PROXY_TRACE_DEFAULTS: Omit<ModelProxyTraceOptions, 'progress'> = { requests: 200, warmup: 20, chunks: 20 }
export const MODEL_PROXY_TRACE_QUICK: Omit<ModelProxyTraceOptions, 'progress'> = { requests: 10, warmup: 2, chunks: 20 }

const PORTKEY = 'Portkey, no 25 ms wait'
const PRELOAD = fileURLToPath(new URL('../../lib/latency-trace.mjs', import.meta.url))

/** One request as the client saw it, on the processes' shared clock (epoch ms). */
interface ClientTiming { path: string, start: number, firstByte: number, end: number }

export async function modelProxyTraceBench (options: ModelProxyTraceOptions): Promise<BenchResult> {
  const secret = randomBytes(32).toString('hex')
  const dir = await mkdtemp(join(tmpdir(), 'clawmatrix-bench-trace-'))
  const traceDir = join(dir, 'trace')
  const children: ReadyChild[] = []
  const roles = new Map<number, string>()
  const timings: ClientTiming[] = []
  const saved = process.env.NODE_OPTIONS
  try {
    await import('node:fs/promises').then(async fs => fs.mkdir(traceDir))
    // Only the children load the subscriber: this process is the client.
    process.env.NODE_OPTIONS = `${saved ?? ''} --import ${PRELOAD}`.trim()
    process.env.CLAWMATRIX_TRACE_DIR = traceDir
    options.progress('starting the upstream, a relay, the proxy nodes, two hosts and Portkey\'s gateway, traced')
    const all = await startCluster(secret, join(dir, 'cluster'), children, options.progress)
    const gateway = await installPortkey(options.progress)
    const portkey = await startPortkey(gateway, true)
    children.push(portkey.child)
    const upstream = all.find(p => p.name === DIRECT)!
    const paths: Path[] = [
      upstream,
      ...all.filter(p => p.name === LOCAL || p.name === ONE_HOP_KEPT),
      { name: PORTKEY, baseUrl: portkey.url, model: 'bench', headers: portkeyHeaders(upstream.baseUrl), pids: [portkey.child.pid] }
    ]
    roles.set(children[0]!.pid, 'upstream')
    for (const path of paths) {
      path.pids.forEach((pid, i) => roles.set(pid, path.name === LOCAL ? 'proxy (local)' : path.name === PORTKEY ? 'portkey' : i === 0 ? 'caller' : 'host'))
    }
    options.progress(`${options.warmup} warm-up + ${options.requests} sequential streams per path, ${options.chunks} chunks each`)
    for (let i = -options.warmup; i < options.requests; i++) {
      for (const path of rotate(paths, i)) {
        const timing = await stream(path, options.chunks)
        if (i >= 0) timings.push(timing)
      }
    }
  } finally {
    if (saved == null) delete process.env.NODE_OPTIONS
    else process.env.NODE_OPTIONS = saved
    delete process.env.CLAWMATRIX_TRACE_DIR
    await Promise.allSettled(children.reverse().map(async child => { await child.stop() }))
  }
  try {
    const marks = await readMarks(traceDir, roles)
    return { name: 'model-proxy-trace', title: 'one streamed request, stage by stage (offsets from the client\'s fetch(), ms)', measurements: breakdown(timings, marks) }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function stream (path: Path, chunks: number): Promise<ClientTiming> {
  const now = (): number => performance.timeOrigin + performance.now()
  const start = now()
  const response = await fetch(`${path.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...path.headers },
    body: JSON.stringify({ model: path.model, stream: true, max_tokens: chunks, messages: [{ role: 'user', content: 'bench' }] }),
    signal: AbortSignal.timeout(60_000)
  })
  if (!response.ok || response.body == null) throw new Error(`${path.name}: HTTP ${response.status} ${await response.text()}`)
  let firstByte: number | undefined
  for await (const _ of response.body) firstByte ??= now()
  return { path: path.name, start, firstByte: firstByte!, end: now() }
}

type Mark = [at: number, stage: string]

async function readMarks (traceDir: string, roles: Map<number, string>): Promise<Array<{ role: string, marks: Mark[] }>> {
  const files = await readdir(traceDir)
  return await Promise.all(files.map(async file => ({
    role: roles.get(Number(file.replace(/\.json$/, ''))) ?? 'other',
    marks: JSON.parse(await readFile(join(traceDir, file), 'utf8')) as Mark[]
  })))
}

/**
 * Per path: every stage reached during its requests, by the first time each
 * process marked it after the client's fetch() (and before the answer ended),
 * as an offset from that fetch(); stages in the order of their medians.
 */
function breakdown (timings: ClientTiming[], processes: Array<{ role: string, marks: Mark[] }>): Measurement[] {
  const byPath = Map.groupBy(timings, t => t.path)
  const measurements: Measurement[] = []
  for (const [path, requests] of byPath) {
    const offsets = new Map<string, number[]>()
    const add = (name: string, ms: number): void => {
      const list = offsets.get(name) ?? []
      list.push(ms)
      offsets.set(name, list)
    }
    for (const request of requests) {
      add('client: first byte', request.firstByte - request.start)
      for (const { role, marks } of processes) {
        const seen = new Set<string>()
        for (const [at, stage] of marks) {
          if (at < request.start || at > request.firstByte || seen.has(stage)) continue
          seen.add(stage)
          add(`${role}: ${stage.replace(/^(caller|host): /, '')}`, at - request.start)
        }
      }
    }
    const rows = [...offsets].map(([name, samples]) => ({ name, samples, p50: summarize(samples).p50 }))
      .filter(row => row.samples.length >= requests.length / 2)
      .sort((a, b) => a.p50 - b.p50)
    measurements.push({
      what: `${path}: stages up to the first byte`,
      unit: 'ms',
      variants: rows.map(({ name, samples }) => ({ name, samples })),
      note: 'offset of the first time each process reached the stage after the client called fetch(); the processes share one clock'
    })
  }
  return measurements
}

function rotate<T> (items: T[], i: number): T[] {
  const k = ((i % items.length) + items.length) % items.length
  return [...items.slice(k), ...items.slice(0, k)]
}
