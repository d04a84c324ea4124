/**
 * Relay idle soak (opt-in: `npm run bench -- relay-idle`): two dial-out-only
 * nodes connected through a relay keep an open protocol stream on their
 * relayed connection with no traffic of their own for 10 minutes; only
 * clawmatrix itself talks on the connection (heartbeat pings and card
 * announcements, default 15 s interval). Then: is it the same connection,
 * still open; does the idle stream still carry data both ways; does a new
 * stream work? A second idle stream, on the direct connection from one of the
 * nodes to the relay, is the control: if only the relayed one dies, the relay
 * path is the cause, if both do, the stream muxer's idle handling.
 *
 * Three processes: the relay and each dial-out node in its own.
 */
import { randomBytes } from 'node:crypto'
import { importDist } from './lib/dist.js'
import { startHosts, stopHosts, type NodeHost } from './lib/hosts.js'
import { sleep } from './lib/wait.js'
import type { NodeSpec, PathKind, StreamState } from './lib/host-api.js'
import type { BenchResult, Variant } from './lib/report.js'

const { SECRET_ENV } = await importDist<typeof import('../src/cli/run-node.js')>('cli/run-node.js')
const { DEFAULT_HEARTBEAT_INTERVAL_MS } = await importDist<typeof import('../src/config/schema.js')>('config/schema.js')

export interface RelayIdleOptions {
  /** How long the streams stay idle. */
  idleMs: number
  /** How often the streams' state is looked at (and printed) while idle. */
  pollMs: number
  /** Round trips before and after the idle period, each way. */
  roundTrips: number
  progress: (line: string) => void
}

export const IDLE_DEFAULTS: Omit<RelayIdleOptions, 'progress'> = { idleMs: 10 * 60_000, pollMs: 30_000, roundTrips: 5 }
/** Just past yamux's 120 s stream inactivity default, in about 2.5 minutes. */
export const IDLE_QUICK: Omit<RelayIdleOptions, 'progress'> = { idleMs: 130_000, pollMs: 10_000, roundTrips: 2 }

const ROUND_TRIP_TIMEOUT_MS = 10_000

/** One idle stream under watch: who opened it, to whom, on which path, and its two ends. */
interface Watched {
  name: string
  path: PathKind
  opener: { host: NodeHost, key: string }
  acceptor: { host: NodeHost, key: string }
  connectionId: string
  /** First state seen that was not open, and when (seconds into the idle period). */
  brokeAt?: { second: number, state: StreamState }
}

export async function relayIdleBench (options: RelayIdleOptions): Promise<BenchResult> {
  const env = { ...process.env, [SECRET_ENV]: randomBytes(32).toString('hex') }
  const intervalMs = DEFAULT_HEARTBEAT_INTERVAL_MS
  const hosts = await startHosts(3, env, 'soak')
  const [relayHost, aHost, bHost] = hosts as [NodeHost, NodeHost, NodeHost]
  try {
    const spec = (nodeId: string, listen: boolean, peers: NodeSpec['peers']): NodeSpec => ({ nodeId, listen, peers, intervalMs, expect: 3 })
    const [relay] = await relayHost.call('start', { nodes: [spec('relay', true, [])] })
    const viaRelay = [{ nodeId: 'relay', url: relay!.ws! }]
    const [a] = await aHost.call('start', { nodes: [spec('private-a', false, viaRelay)] })
    const [b] = await bHost.call('start', { nodes: [spec('private-b', false, viaRelay)] })
    for (const host of hosts) {
      const { records } = await host.call('waitConverged', { timeoutMs: 60_000 }, 70_000)
      if (records.some(r => r.reachesAllAt == null)) throw new Error(`set-up: ${records.map(r => `${r.nodeId} reaches ${r.reachable} of 3`).join(', ')}`)
    }
    await bHost.call('serveEcho', { nodeId: 'private-b' })
    await relayHost.call('serveEcho', { nodeId: 'relay' })

    const open = async (name: string, path: PathKind, acceptorHost: NodeHost, acceptorId: string, acceptorPeer: string): Promise<Watched> => {
      const opened = await aHost.call('openEcho', { from: 'private-a', to: acceptorPeer, path })
      // The acceptor's handler runs once the stream is negotiated; after a round trip it surely has.
      await aHost.call('roundTrip', { key: opened.key, timeoutMs: ROUND_TRIP_TIMEOUT_MS })
      const accepted = await acceptorHost.call('acceptedEcho', { nodeId: acceptorId, remote: a!.peerId, path })
      return { name, path, opener: { host: aHost, key: opened.key }, acceptor: { host: acceptorHost, key: accepted.key }, connectionId: opened.connectionId }
    }
    const relayed = await open('relayed A -> relay -> B', 'relayed', bHost, 'private-b', b!.peerId)
    const control = await open('direct A -> relay (control)', 'direct', relayHost, 'relay', relay!.peerId)
    const watched = [relayed, control]

    const samples = new Map<string, number[]>()
    const record = (name: string, ms: number): void => { samples.set(name, [...(samples.get(name) ?? []), ms]) }
    const failures: string[] = []
    const roundTrips = async (w: Watched, when: string): Promise<void> => {
      for (const [end, label] of [[w.opener, 'opener first'], [w.acceptor, 'acceptor first']] as const) {
        for (let i = 0; i < options.roundTrips; i++) {
          try {
            record(`${when}, ${w.name}, ${label}`, (await end.host.call('roundTrip', { key: end.key, timeoutMs: ROUND_TRIP_TIMEOUT_MS })).ms)
          } catch (err: any) {
            failures.push(`${when}, ${w.name}, ${label}: ${firstLine(err.message)}`)
            break
          }
        }
      }
    }
    for (const w of watched) await roundTrips(w, 'before idle')

    options.progress(`idle for ${options.idleMs / 1000} s: streams and connections are only looked at, every ${options.pollMs / 1000} s`)
    const idleStart = Date.now()
    while (Date.now() - idleStart < options.idleMs) {
      await sleep(Math.min(options.pollMs, options.idleMs - (Date.now() - idleStart)))
      const second = Math.round((Date.now() - idleStart) / 1000)
      const line: string[] = []
      for (const w of watched) {
        const state = await w.opener.host.call('streamState', { key: w.opener.key })
        if (w.brokeAt == null && (state.status !== 'open' || state.connectionStatus !== 'open')) w.brokeAt = { second, state }
        line.push(`${w.path}: stream ${state.status}, connection ${state.connectionStatus}`)
      }
      options.progress(`+${second} s: ${line.join('; ')}`)
    }
    const idleSeconds = Math.round((Date.now() - idleStart) / 1000)

    const verdicts: string[] = []
    for (const w of watched) {
      const openerState = await w.opener.host.call('streamState', { key: w.opener.key })
      const acceptorState = await w.acceptor.host.call('streamState', { key: w.acceptor.key })
      await roundTrips(w, 'after idle')
      let newStream = 'a new stream: not tried (no open connection)'
      const same = openerState.connections.find(c => c.id === w.connectionId)
      if (same?.status === 'open') {
        try {
          const fresh = await aHost.call('openEcho', { from: 'private-a', to: w.path === 'relayed' ? b!.peerId : relay!.peerId, path: w.path })
          const { ms } = await aHost.call('roundTrip', { key: fresh.key, timeoutMs: ROUND_TRIP_TIMEOUT_MS })
          record(`after idle, ${w.name}, new stream`, ms)
          newStream = `a new stream on ${fresh.connectionId === w.connectionId ? 'the same' : 'ANOTHER'} connection: round trip ${ms.toFixed(1)} ms`
        } catch (err: any) {
          newStream = `a new stream FAILED: ${firstLine(err.message)}`
        }
      }
      verdicts.push(`${w.name}: connection ${w.connectionId} ${same == null ? 'GONE' : same.status} after ${idleSeconds} s idle ` +
        `(${openerState.connectionsOpenedSince} other connections to that peer opened meanwhile); ` +
        `idle stream ${openerState.status} (read ${openerState.readStatus}, write ${openerState.writeStatus}) at the opener, ` +
        `${acceptorState.status} at the acceptor` +
        (w.brokeAt == null ? '' : `; first seen broken at +${w.brokeAt.second} s: ${w.brokeAt.state.closeError ?? w.brokeAt.state.status}` +
          (w.brokeAt.state.closedAt == null ? '' : ` (closed ${Math.round((w.brokeAt.state.closedAt - idleStart) / 1000)} s into the idle period)`)) +
        `; ${newStream}`)
    }
    for (const v of verdicts) options.progress(v)
    for (const f of failures) options.progress(`round trip failed: ${f}`)

    const variants: Variant[] = [...samples].map(([name, values]) => ({ name, samples: values }))
    return {
      name: 'relay-idle',
      title: `relayed connection and streams after ${idleSeconds} s without traffic of their own (heartbeat ${intervalMs / 1000} s)`,
      measurements: [{
        what: 'echo round trip on the idle streams, before and after the idle period',
        unit: 'ms',
        variants,
        note: [...verdicts, ...failures.map(f => `round trip failed: ${f}`)].join('\n   ')
      }]
    }
  } finally {
    await stopHosts(hosts)
  }
}

function firstLine (text: string): string {
  return text.split('\n')[0] ?? text
}
