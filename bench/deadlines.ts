/**
 * What the deadlines on a model request's waits cost the caller: the
 * machinery alone, side by side in one process, for a streamed answer of
 * `frames` body frames (docs/protocol.md, "Every wait for a peer is a
 * wakeful deadline").
 *
 * - per read (before): the first answer under AbortSignal.any(caller,
 *   AbortSignal.timeout(answer)); every read under AbortSignal.any(that or
 *   the caller, AbortSignal.timeout(idle)), as readUntil did;
 * - wakeful (now): the open, first-answer and first-read deadlines, then
 *   one silence deadline for the body, restarted and paused per frame.
 *
 * Both also add and remove one abort listener per read, as FrameReader does.
 * Each request gets its own caller signal, as each HTTP request does. CPU
 * time of this process (process.cpuUsage), rounds interleaved.
 */
import { setMaxListeners } from 'node:events'
import { importDist } from './lib/dist.js'
import type { BenchResult, Variant } from './lib/report.js'

const { WakefulDeadline } = await importDist<typeof import('../src/node/wakeful-deadline.js')>('node/wakeful-deadline.js')

export interface DeadlinesBenchOptions {
  /** Requests per round, body frames per request, rounds per variant. */
  requests: number
  frames: number
  rounds: number
  progress: (line: string) => void
}

export const DEADLINES_DEFAULTS = { requests: 2_000, frames: 20, rounds: 7 }
export const DEADLINES_QUICK = { requests: 200, frames: 20, rounds: 2 }

const ANSWER_MS = 310_000
const IDLE_MS = 60_000
const OPEN_MS = 10_000
const noop = (): void => {}

function perRead (caller: AbortSignal, frames: number): void {
  const open = AbortSignal.any([caller, AbortSignal.timeout(OPEN_MS)])
  setMaxListeners(Infinity, open)
  const answer = AbortSignal.any([caller, AbortSignal.timeout(ANSWER_MS)])
  setMaxListeners(Infinity, answer)
  for (let i = 0; i <= frames; i++) {
    const read = AbortSignal.any([i === 0 ? answer : caller, AbortSignal.timeout(IDLE_MS)])
    setMaxListeners(Infinity, read)
    read.addEventListener('abort', noop, { once: true })
    read.removeEventListener('abort', noop)
  }
}

function wakeful (caller: AbortSignal, frames: number): void {
  const open = new WakefulDeadline(OPEN_MS, { signal: caller })
  open.clear()
  const answer = new WakefulDeadline(ANSWER_MS, { signal: caller })
  const first = new WakefulDeadline(IDLE_MS, { signal: answer.signal })
  first.signal.addEventListener('abort', noop, { once: true })
  first.signal.removeEventListener('abort', noop)
  first.clear()
  answer.clear()
  const idle = new WakefulDeadline(IDLE_MS, { signal: caller })
  for (let i = 0; i < frames; i++) {
    idle.restart()
    idle.signal.addEventListener('abort', noop, { once: true })
    idle.signal.removeEventListener('abort', noop)
    idle.pause()
  }
  idle.clear()
}

function cpuMs (): number {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

export async function deadlinesBench (options: DeadlinesBenchOptions): Promise<BenchResult> {
  const variants: Array<Variant & { run: (caller: AbortSignal, frames: number) => void }> = [
    { name: 'per read: AbortSignal.timeout + any (before)', samples: [], baseline: true, run: perRead },
    { name: 'wakeful, one per wait (now)', samples: [], run: wakeful }
  ]
  for (let round = 0; round < options.rounds; round++) {
    for (const variant of variants) {
      const started = cpuMs()
      for (let i = 0; i < options.requests; i++) variant.run(new AbortController().signal, options.frames)
      variant.samples.push((cpuMs() - started) / options.requests * 1000)
      // A turn of the loop between rounds, as requests have.
      await new Promise(resolve => setImmediate(resolve))
    }
    options.progress(`deadlines: round ${round + 1} of ${options.rounds}`)
  }
  return {
    name: 'deadlines',
    title: `Deadlines of one streamed model request (${options.frames} body frames), the caller's machinery alone`,
    measurements: [{
      what: 'CPU per 1000 requests',
      unit: 'ms',
      variants: variants.map(({ name, samples, baseline }) => ({ name, samples, baseline })),
      note: `one sample per round of ${options.requests} requests, rounds interleaved; process.cpuUsage of one process; timers armed but never due, as on a healthy stream`
    }]
  }
}
