import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { rssBytes, spawnNodeUntilReady, type ReadyChild } from './child.js'
import { sleep } from './wait.js'
import type { Variant } from './report.js'
import type { PeerId } from '@libp2p/interface'

/**
 * "... started: peer id <id>; listening on <a>, <b>": the start line of the
 * clawmatrix CLI, which the baseline process imitates.
 */
export const START_LINE = /started: peer id (\S+); listening on ([^;\n]+)/

/**
 * Dials to one listener start at most this often (50/s): half of clawmatrix's
 * inbound threshold of 100 dials/s per IP, beyond which libp2p refuses a dial
 * with a misleading "Unexpected EOF" (it would pass for a gate refusal).
 */
export const MIN_DIAL_INTERVAL_MS = 20

/** How long a process idles before its memory is read, and the reads. */
const SETTLE_MS = 1_000
const RSS_READS = 5
const RSS_READ_EVERY_MS = 200

/** How to start one kind of node process; `cleanup` removes what `prepare` made. */
export interface Launch {
  name: string
  ready: RegExp
  prepare: () => Promise<{ args: string[], env?: NodeJS.ProcessEnv, cleanup?: () => Promise<void> }>
}

/** A node process that listens, and where to dial it. */
export interface Listener {
  process: ReadyChild
  peerId: PeerId
  address: Multiaddr
  /** When the last dial to it started (performance.now()), for pacing. */
  lastDialAt: number
}

/** Starts a launch whose ready pattern is START_LINE and picks its ws address. */
export async function startListener (launch: Launch): Promise<Listener> {
  const { args, env, cleanup } = await launch.prepare()
  const child = await spawnNodeUntilReady(args, { ready: launch.ready, ...(env == null ? {} : { env }) })
  // State is only read at start; removing it under the running node is harmless.
  await cleanup?.()
  const [, peerId, addresses] = child.match
  const ws = addresses?.split(', ').find(a => a.includes('/ws') && !a.includes('p2p-circuit'))
  if (peerId == null || ws == null) {
    await child.stop()
    throw new Error(`${launch.name}: no ws address in its start line "${child.match[0]}"`)
  }
  return { process: child, peerId: peerIdFromString(peerId), address: multiaddr(ws), lastDialAt: 0 }
}

/** Starts one listener per launch (by name), runs `fn` with them, and stops them. */
export async function withListeners<T> (launches: Launch[], fn: (listeners: Map<string, Listener>) => Promise<T>): Promise<T> {
  const listeners = new Map<string, Listener>()
  try {
    for (const launch of launches) listeners.set(launch.name, await startListener(launch))
    return await fn(listeners)
  } finally {
    await Promise.allSettled([...listeners.values()].map(async l => { await l.process.stop() }))
  }
}

/** Waits until MIN_DIAL_INTERVAL_MS have passed since the last dial to `listener`. */
export async function paced (listener: Listener): Promise<void> {
  const wait = listener.lastDialAt + MIN_DIAL_INTERVAL_MS - performance.now()
  if (wait > 0) await sleep(wait)
  listener.lastDialAt = performance.now()
}

/** Lets the listeners idle, then reads each one's RSS a few times (MiB); `baseline` names the reference row. */
export async function readRss (listeners: Map<string, Listener>, baseline: string): Promise<Variant[]> {
  await sleep(SETTLE_MS)
  const samples = new Map<string, number[]>([...listeners.keys()].map(name => [name, []]))
  for (let i = 0; i < RSS_READS; i++) {
    if (i > 0) await sleep(RSS_READ_EVERY_MS)
    for (const [name, listener] of listeners) samples.get(name)!.push(await rssBytes(listener.process.pid) / 2 ** 20)
  }
  return [...samples].map(([name, values]) => ({ name, samples: values, baseline: name === baseline }))
}

export const RSS_METHOD = `${RSS_READS} reads of /proc/<pid>/status VmRSS, ${RSS_READ_EVERY_MS} ms apart, after ${SETTLE_MS} ms idle`
