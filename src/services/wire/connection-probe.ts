/**
 * Asks a connection whether it still carries anything, with the muxer's own
 * ping (a yamux PING frame each way: no stream, no protocol negotiation),
 * for a request that waits on a stream and heard nothing yet.
 */
import { DEFAULT_PROBE_TIMEOUT_MS } from '../../config/schema.js'
import { WakefulDeadline } from '../../node/wakeful-deadline.js'
import { whenAborted } from '../../node/when-aborted.js'
import { SilentConnectionError } from './errors.js'
import { relayOf, type PeerDescriber } from './path.js'
import type { Connection } from '@libp2p/interface'

export interface ConnectionProbeInit {
  /**
   * A ping unanswered this long (wakefully: a blocked process does not count
   * it) makes the connection silent.
   *
   * @default 3_000
   */
  timeoutMs?: number
  /** Names peers in errors. */
  describePeer?: PeerDescriber
}

/** The part of @libp2p/yamux 8's muxer a probe uses. */
interface PingingMuxer {
  ping(): Promise<number>
}

interface Probe {
  /** Settles when the pong arrives (true) or the muxer closed (false). */
  pong: Promise<boolean>
  /** performance.now() when the ping went out. */
  sentAt: number
  /** No pong within the timeout: the connection is silent until one arrives. */
  silent: boolean
}

/**
 * One ping per connection at a time, shared by every request that probes it.
 * A ping is never aborted: in @libp2p/yamux 8 a pong that arrives after its
 * ping was given up throws in the muxer and kills the connection, so a slow
 * peer's late answer would cut every stream on it. A connection whose ping
 * went unanswered for `timeoutMs` is silent until the pong arrives (it was
 * only slow) or it closes (the heartbeat gives the peer up).
 */
export class ConnectionProbe {
  readonly timeoutMs: number
  private readonly probes = new WeakMap<Connection, Probe>()
  private readonly describePeer?: PeerDescriber

  constructor (init: ConnectionProbeInit = {}) {
    this.timeoutMs = init.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS
    this.describePeer = init.describePeer
  }

  /**
   * Pings `connection` (or joins the ping under way) and resolves true when
   * it answered within the timeout, false when it did not, undefined when
   * it cannot be pinged (another muxer) or `signal` aborted first: the
   * request got its answer meanwhile.
   */
  async probe (connection: Connection, signal: AbortSignal): Promise<boolean | undefined> {
    let probe = this.probes.get(connection)
    if (probe == null) {
      const muxer = pingingMuxer(connection)
      if (muxer == null) return undefined
      const sent: Probe = { pong: muxer.ping().then(() => true, () => false), sentAt: performance.now(), silent: false }
      void sent.pong.then(() => { if (this.probes.get(connection) === sent) this.probes.delete(connection) })
      this.probes.set(connection, probe = sent)
    }
    if (probe.silent) return false
    const deadline = new WakefulDeadline(Math.max(0, this.timeoutMs - (performance.now() - probe.sentAt)), { signal })
    try {
      const answered = await Promise.race([probe.pong, whenAborted(deadline.signal)])
      if (answered === true) return true
      if (answered === false) return false
      if (!deadline.expired) return undefined
      probe.silent = true
      return false
    } finally {
      deadline.clear()
    }
  }

  /**
   * A SilentConnectionError naming the peer when `connection` is silent (a
   * probe's ping went unanswered and still is), else undefined.
   */
  silence (connection: Connection): SilentConnectionError | undefined {
    const probe = this.probes.get(connection)
    if (probe?.silent !== true || connection.status !== 'open') return undefined
    const name = (peerId: string): string => this.describePeer?.name(peerId) ?? peerId
    const relay = relayOf(connection)
    return new SilentConnectionError(name(connection.remotePeer.toString()), performance.now() - probe.sentAt, relay == null ? 'direct' : `through relay ${name(relay)}`)
  }
}

/**
 * The connection's yamux muxer. libp2p 3 keeps it in a field its
 * Connection does not declare; another version or muxer: undefined (no
 * probe, requests wait as before).
 */
function pingingMuxer (connection: Connection): PingingMuxer | undefined {
  const muxer = (connection as unknown as { muxer?: Partial<PingingMuxer> }).muxer
  return typeof muxer?.ping === 'function' ? muxer as PingingMuxer : undefined
}
