/**
 * The work protocols (hand-off, tool proxy) beside libp2p's own floor, on
 * the same connection in the same run:
 *
 * 1. round trips of small requests through the caller API
 *    (`node.client.handoff/read/exec`) against a bench protocol that echoes
 *    one frame over a new stream (./lib/frame-echo.ts) and libp2p ping;
 * 2. the same work run on the executing node without the network (the
 *    command runner and the tool executor called directly): what the
 *    agent process or the tool costs by itself;
 * 3. 1 MiB of tool output (exec and read) against 1 MiB of the same output
 *    frames from the echo protocol, and of raw bytes.
 *
 * Each over a direct connection (two listening nodes) and a relayed one
 * (two dial-out-only nodes through a relay). All nodes are real
 * ClawmatrixNodes from dist/ in the bench process, on loopback; the
 * variants are interleaved request by request.
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { importDist } from './lib/dist.js'
import { frameBulk, frameEcho, FRAMES_PER_MIB, OUTPUT_PIECE_KIB, rawBulk, serveBytes, serveFrameEcho } from './lib/frame-echo.js'
import { percentile } from './lib/stats.js'
import { timed, waitFor } from './lib/wait.js'
import { COMMAND_AGENT, ECHO_AGENT_COMMAND, EXECUTOR, IN_PROCESS_AGENT, startWorkPath, type WorkPath } from './lib/work-nodes.js'
import type { BenchResult, Measurement, Variant } from './lib/report.js'

const { CommandAgentRunner } = await importDist<typeof import('../src/services/agents/command-runner.js')>('services/agents/command-runner.js')
const { nodeLogger } = await importDist<typeof import('../src/node/logging.js')>('node/logging.js')
const { ToolExecutor } = await importDist<typeof import('../src/services/tools/executor.js')>('services/tools/executor.js')
const { builtinToolRegistry } = await importDist<typeof import('../src/services/tools/builtin.js')>('services/tools/builtin.js')
const { DEFAULT_MAX_OUTPUT_BYTES } = await importDist<typeof import('../src/config/schema.js')>('config/schema.js')

export interface WorkBenchOptions {
  /** Round trips per operation and path, after `warmup` unrecorded ones. */
  roundTrips: number
  warmup: number
  /** 1 MiB transfers per variant and path, after one unrecorded one. */
  transfers: number
  progress: (line: string) => void
}

export const WORK_DEFAULTS: Omit<WorkBenchOptions, 'progress'> = { roundTrips: 200, warmup: 10, transfers: 30 }
/** Enough to see that every part works; the figures mean little. */
export const WORK_QUICK: Omit<WorkBenchOptions, 'progress'> = { roundTrips: 10, warmup: 2, transfers: 2 }

const CALL_TIMEOUT_MS = 30_000
const SMALL_FILE = 'small-1k.txt'
const LARGE_FILE = 'large-1m.txt'
const SMALL_BYTES = 1024
/** Exactly the default output cap, so nothing is cut (asserted below). */
const LARGE_BYTES = DEFAULT_MAX_OUTPUT_BYTES
const LARGE_EXEC = `head -c ${LARGE_BYTES} /dev/zero | tr '\\0' a`
const TASK = 'say this back'

const ECHO = 'libp2p echo: 1 frame, new stream'
const PING = 'libp2p ping: new stream'
const PING_PROTOCOL = '/ipfs/ping/1.0.0'

/** One timed operation; throws when its answer is not what it must be. */
interface Operation {
  name: string
  /** Resolves RETRY when the attempt collided with the node's own traffic: it is not timed, and is run again. */
  run: (signal: AbortSignal) => Promise<void | typeof RETRY>
}

const RETRY = Symbol('retry')
const MAX_ATTEMPTS = 3

export async function workBench (options: WorkBenchOptions): Promise<BenchResult> {
  const workdir = await mkdtemp(join(tmpdir(), 'clawmatrix-bench-work-'))
  const paths: WorkPath[] = []
  try {
    await writeFile(join(workdir, SMALL_FILE), lines(SMALL_BYTES / 64, 64))
    await writeFile(join(workdir, LARGE_FILE), lines(LARGE_BYTES / 1024, 1024))
    for (const kind of ['direct', 'relayed'] as const) {
      options.progress(`work: starting the ${kind} path`)
      const path = await startWorkPath(kind, workdir)
      paths.push(path)
      await serveFrameEcho(path.executor.swarm)
      await serveBytes(path.executor.swarm)
    }
    const connections = new Map(paths.map(p => [p, p.connection().id]))

    const outputFrames: OutputFrames = new Map()
    const local = localOperations(workdir, outputFrames)
    const roundTrip = new Map(paths.map(p => [p, roundTripOperations(p)]))
    options.progress(`work: round trips, ${options.warmup} warm-up + ${options.roundTrips} per operation and path`)
    const small = await interleave([...roundTrip.values(), local.small], options.warmup, options.roundTrips)

    const bulk = new Map(paths.map(p => [p, bulkOperations(p, outputFrames)]))
    options.progress(`work: 1 MiB tool output, 1 warm-up + ${options.transfers} per variant and path`)
    const large = await interleave([...bulk.values(), local.large], 1, options.transfers)

    const changed = paths.filter(p => p.connection().id !== connections.get(p)).map(p => p.kind)
    const warnings = paths.flatMap(p => p.warnings)
    const health = (changed.length > 0 ? `; the ${changed.join(' and ')} connection was replaced during the run` : '') +
      (warnings.length > 0 ? `; node warnings: ${warnings.slice(0, 3).join(' | ')}` : '')

    const measurements: Measurement[] = paths.map(p => ({
      what: `round trip through the caller API, ${p.kind} (${describe(p)})`,
      unit: 'ms',
      variants: variantsOf(roundTrip.get(p)!, small, ECHO),
      note: `request to answer, one request at a time; hand-off = node.client.handoff, a new stream each; ${roundTrip.get(p)!.length} operations interleaved${health}`
    }))
    measurements.push({
      what: 'the same work on the executing node without the network (runner and tool executor called directly)',
      unit: 'ms',
      variants: variantsOf(local.small, small),
      note: 'what the agent process or the tool costs by itself, in the same loop as the round trips'
    })
    measurements.push(...paths.map(p => ({
      what: `1 MiB of tool output to the caller, ${p.kind}: time to the last byte`,
      unit: 'ms' as const,
      variants: variantsOf(bulk.get(p)!, large, bulkName('libp2p')),
      note: `libp2p echo = ${FRAMES_PER_MIB} output frames of ${OUTPUT_PIECE_KIB} KiB (the tool proxy's largest) from the echo protocol, no process, no file; raw bytes = no framing; ` +
        `output frames per call, median: ${frameCounts(outputFrames, p.kind)}${health}`
    })))
    measurements.push({
      what: '1 MiB of tool output produced on the executing node without the network',
      unit: 'ms',
      variants: variantsOf(local.large, large),
      note: `the tool executor called directly, output discarded; output pieces (frames, on the wire) per call, median: ${frameCounts(outputFrames, 'local')}`
    })
    measurements.push({
      what: '1 MiB of tool output to the caller: throughput (MB = 10^6 bytes)',
      unit: 'MB/s',
      variants: paths.flatMap(p => bulk.get(p)!.map((op, i) => ({
        name: `${p.kind}: ${op.name}`,
        samples: large.get(op)!.map(ms => LARGE_BYTES / 1e6 / (ms / 1000)),
        baseline: p.kind === 'direct' && i === 0
      }))),
      note: 'from the samples above'
    })
    return { name: 'work', title: 'work protocols (hand-off, tool proxy) vs a libp2p request/response, direct and relayed', measurements }
  } finally {
    await Promise.allSettled(paths.map(async p => { await p.stop() }))
    await rm(workdir, { recursive: true, force: true })
  }
}

function roundTripOperations ({ caller, executor }: WorkPath): Operation[] {
  const peer = executor.peerId
  return [
    { name: ECHO, run: async signal => { await frameEcho(caller.swarm, peer, TASK, signal) } },
    {
      name: PING,
      run: async signal => {
        try {
          await caller.swarm.services.ping.ping(peer, { signal })
        } catch (err: any) {
          // libp2p allows one outbound ping stream per connection, and the node's heartbeat pings too.
          if (err.name !== 'TooManyOutboundProtocolStreamsError') throw err
          await waitFor('the heartbeat\'s ping to end', () => !caller.swarm.getConnections(peer)
            .some(c => c.streams.some(s => s.direction === 'outbound' && s.protocol === PING_PROTOCOL)), { timeoutMs: 5_000, intervalMs: 1 })
          return RETRY
        }
      }
    },
    {
      name: 'hand-off, in-process agent',
      run: async signal => { expectText(await caller.client.handoff(IN_PROCESS_AGENT, TASK, null, { signal }).then(o => o.reply), TASK, 'in-process agent') }
    },
    {
      name: 'hand-off, command agent (node -e)',
      run: async signal => { expectText(await caller.client.handoff(COMMAND_AGENT, TASK, null, { signal }).then(o => o.reply), TASK, 'command agent') }
    },
    {
      name: 'read, 1 KiB file',
      run: async signal => { expectLength((await caller.client.read(EXECUTOR, SMALL_FILE, {}, { signal })).output.content, SMALL_BYTES, 'read') }
    },
    {
      name: 'exec `true`',
      run: async signal => { expectExit0((await caller.client.exec(EXECUTOR, { command: 'true' }, { signal })).details, 'exec true') }
    }
  ]
}

/** How many output frames each call of a bulk operation got, by "<path>: <operation>". */
type OutputFrames = Map<string, number[]>

function recordFrames (frames: OutputFrames, key: string, count: number): void {
  frames.set(key, [...frames.get(key) ?? [], count])
}

/** "exec 66, read 64": the median count of each operation of `kind`. */
function frameCounts (frames: OutputFrames, kind: string): string {
  return [...frames].filter(([key]) => key.startsWith(`${kind}: `))
    .map(([key, counts]) => `${key.slice(kind.length + 2).split(' ')[0]} ${percentile([...counts].sort((a, b) => a - b), 50)}`).join(', ')
}

function bulkOperations ({ kind, caller, executor }: WorkPath, frames: OutputFrames): Operation[] {
  return [
    {
      name: bulkName('libp2p'),
      run: async signal => {
        const received = await frameBulk(caller.swarm, executor.peerId, LARGE_BYTES, signal)
        if (received !== LARGE_BYTES) throw new Error(`the echo protocol sent ${received} of ${LARGE_BYTES} characters`)
      }
    },
    {
      name: bulkName('bytes'),
      run: async signal => {
        const received = await rawBulk(caller.swarm, executor.peerId, LARGE_BYTES, signal)
        if (received !== LARGE_BYTES) throw new Error(`the bytes protocol sent ${received} of ${LARGE_BYTES} bytes`)
      }
    },
    {
      name: bulkName('exec'),
      run: async signal => {
        let count = 0
        const outcome = await caller.client.exec(EXECUTOR, { command: LARGE_EXEC }, { signal, onOutput: () => { count++ } })
        recordFrames(frames, `${kind}: exec`, count)
        expectExit0(outcome.details, 'exec 1 MiB')
        expectWhole(outcome.truncated, outcome.output.stdout, 'exec')
      }
    },
    {
      name: bulkName('read'),
      run: async signal => {
        let count = 0
        const outcome = await caller.client.read(EXECUTOR, LARGE_FILE, {}, { signal, onOutput: () => { count++ } })
        recordFrames(frames, `${kind}: read`, count)
        expectWhole(outcome.truncated, outcome.output.content, 'read')
      }
    }
  ]
}

function bulkName (how: 'libp2p' | 'bytes' | 'exec' | 'read'): string {
  return {
    libp2p: `libp2p echo: ${FRAMES_PER_MIB} frames, new stream`,
    bytes: 'libp2p: raw bytes, 64 KiB writes, new stream',
    exec: `exec \`${LARGE_EXEC}\``,
    read: 'read, 1 MiB file (1024 lines)'
  }[how]
}

/** The command runner and the tool executor of an executing node, without a node around them. */
function localOperations (workdir: string, frames: OutputFrames): { small: Operation[], large: Operation[] } {
  const runner = new CommandAgentRunner([{ id: COMMAND_AGENT, description: '', tags: [], command: ECHO_AGENT_COMMAND }], { logger: nodeLogger('local') })
  const executor = new ToolExecutor({
    nodeId: 'local',
    config: { enabled: true, allow: [], deny: [], maxOutputBytes: DEFAULT_MAX_OUTPUT_BYTES, workdir },
    registry: builtinToolRegistry()
  })
  const tool = async (name: string, params: Record<string, unknown>, signal: AbortSignal, countAs?: string): Promise<{ details?: Record<string, unknown>, chars: number }> => {
    let chars = 0
    let pieces = 0
    const outcome = await executor.execute({ tool: name, params }, { signal, output: async (_channel, text) => { chars += text.length; pieces++ } })
    if (outcome.status !== 'ok') throw new Error(`local ${name} ended ${outcome.status}: ${outcome.error?.message}`)
    if (countAs != null) recordFrames(frames, `local: ${countAs}`, pieces)
    return { details: outcome.details, chars }
  }
  return {
    small: [
      {
        name: 'command agent run (node -e)',
        run: async signal => { expectText((await runner.run(COMMAND_AGENT, TASK, null, { signal, id: randomUUID() })).text, TASK, 'local command agent') }
      },
      {
        name: 'read, 1 KiB file',
        run: async signal => { if ((await tool('read', { path: SMALL_FILE }, signal)).chars !== SMALL_BYTES) throw new Error('local read: wrong length') }
      },
      { name: 'exec `true`', run: async signal => { expectExit0((await tool('exec', { command: 'true' }, signal)).details, 'local exec true') } }
    ],
    large: [
      {
        name: bulkName('exec'),
        run: async signal => { if ((await tool('exec', { command: LARGE_EXEC }, signal, 'exec')).chars !== LARGE_BYTES) throw new Error('local exec 1 MiB: wrong length') }
      },
      {
        name: bulkName('read'),
        run: async signal => { if ((await tool('read', { path: LARGE_FILE }, signal, 'read')).chars !== LARGE_BYTES) throw new Error('local read 1 MiB: wrong length') }
      }
    ]
  }
}

/**
 * Runs every operation of every group `warmup + count` times, one at a
 * time; the order rotates each round so that no operation always follows
 * the same one (a process start, say). Returns the recorded milliseconds.
 */
async function interleave (groups: Operation[][], warmup: number, count: number): Promise<Map<Operation, number[]>> {
  const samples = new Map(groups.flat().map(op => [op, [] as number[]]))
  for (let round = -warmup; round < count; round++) {
    for (const ops of groups) {
      const shift = ((round % ops.length) + ops.length) % ops.length
      for (const op of [...ops.slice(shift), ...ops.slice(0, shift)]) {
        for (let attempt = 1; ; attempt++) {
          const { ms, value } = await timed(async () => op.run(AbortSignal.timeout(CALL_TIMEOUT_MS)))
          if (value !== RETRY) {
            if (round >= 0) samples.get(op)!.push(ms)
            break
          }
          if (attempt === MAX_ATTEMPTS) throw new Error(`${op.name}: ${MAX_ATTEMPTS} attempts in a row collided with the node's own traffic`)
        }
      }
    }
  }
  return samples
}

function variantsOf (ops: Operation[], samples: Map<Operation, number[]>, baseline?: string): Variant[] {
  return ops.map(op => ({ name: op.name, samples: samples.get(op)!, ...(op.name === baseline ? { baseline: true } : {}) }))
}

/** The caller's side of the path, peer ids elided. */
function describe (path: WorkPath): string {
  return path.connection().remoteAddr.toString().replace(/\/p2p\/\w+/g, '/p2p/…')
}

/** `count` lines of `width` bytes each, newline included. */
function lines (count: number, width: number): string {
  return `${'a'.repeat(width - 1)}\n`.repeat(count)
}

function expectText (actual: string, expected: string, what: string): void {
  if (actual !== expected) throw new Error(`${what} answered ${JSON.stringify(actual.slice(0, 200))}, expected ${JSON.stringify(expected)}`)
}

function expectLength (text: string | undefined, length: number, what: string): void {
  if (text?.length !== length) throw new Error(`${what} returned ${text?.length ?? 'no'} characters, expected ${length}`)
}

function expectExit0 (details: Record<string, unknown> | undefined, what: string): void {
  if (details?.exitCode !== 0) throw new Error(`${what} exited with ${String(details?.exitCode)}`)
}

function expectWhole (truncated: unknown, text: string | undefined, what: string): void {
  if (truncated != null) throw new Error(`${what} output was cut: ${JSON.stringify(truncated)}`)
  expectLength(text, LARGE_BYTES, what)
}
