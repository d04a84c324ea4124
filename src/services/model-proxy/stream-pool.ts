import { DEFAULT_IDLE_STREAM_MS, DEFAULT_IDLE_STREAMS_PER_HOST } from '../../config/schema.js'
import { FrameStream } from '../wire/frame-stream.js'
import type { ConnectionProbe } from '../wire/connection-probe.js'
import type { ProtocolComponents } from '../wire/components.js'
import type { AbortOptions, Connection, Logger, PeerId, Startable, Stream } from '@libp2p/interface'

export interface ModelStreamPoolInit {
  /** The protocol id whose streams carry one request after another. */
  reuseProtocol: string
  /** The one-request-per-stream id, for hosts that do not speak `reuseProtocol`. */
  legacyProtocol: string
  maxFrameBytes: number
  runOnLimitedConnection: boolean
  /**
   * Idle streams kept per host; a stream freed while as many wait is closed.
   * Busy streams are not capped here (the host's stream limit is). Room for
   * a burst, so the next one finds its streams open: what is not used again
   * closes after `idleTimeoutMs`.
   *
   * @default 128
   */
  maxIdlePerHost?: number
  /**
   * An idle stream is closed after this long without a request.
   *
   * @default 10_000
   */
  idleTimeoutMs?: number
  /** Connections found silent: their idle streams are dropped and no new stream is opened on them. */
  probe?: ConnectionProbe
}

/** A stream lent to one request at a time. */
export interface StreamLease {
  frames: FrameStream
  connection: Connection
  /** Whether the stream speaks the reuse protocol (else it carries this request only). */
  reusable: boolean
  /** Whether it carried an earlier request (so a failure before any answer may be that it died meanwhile). */
  reused: boolean
  /** The request id to send next on this stream. */
  nextId: number
}

interface IdleStream {
  lease: StreamLease
  timer: ReturnType<typeof setTimeout>
  onClose: () => void
}


/**
 * The caller's model streams, kept open between requests: one request at a
 * time per stream (so each request keeps its own flow control, and a slow
 * reader pauses only its own answer), several streams per host when
 * requests overlap. A stream goes back to the pool only after a clean final
 * frame; a cancelled, cut or failed one is closed. Idle streams close after
 * `idleTimeoutMs`, beyond `maxIdlePerHost`, when the connection closes
 * (a host restart), and on stop().
 *
 * Hosts that do not speak the reuse protocol are asked with the old one;
 * that is remembered per connection, so a host that restarts upgraded is
 * asked again.
 */
export class ModelStreamPool implements Startable {
  private readonly idle = new Map<string, IdleStream[]>()
  /** The streams parked in `idle`, for isIdle(): libp2p owns the streams, so weakly. */
  private readonly parked = new WeakSet<Stream>()
  /** Connections to hosts that answered only the one-request protocol. */
  private readonly legacy = new WeakSet<Connection>()
  private readonly maxIdlePerHost: number
  private readonly idleTimeoutMs: number
  private started = false

  constructor (private readonly components: ProtocolComponents, private readonly init: ModelStreamPoolInit, private readonly log: Logger) {
    this.maxIdlePerHost = init.maxIdlePerHost ?? DEFAULT_IDLE_STREAMS_PER_HOST
    this.idleTimeoutMs = init.idleTimeoutMs ?? DEFAULT_IDLE_STREAM_MS
  }

  start (): void {
    this.started = true
  }

  /** Closes every idle stream. Streams lent out close when their request ends. */
  async stop (): Promise<void> {
    this.started = false
    const all = [...this.idle.values()].flat()
    this.idle.clear()
    await Promise.all(all.map(async idle => {
      this.unpark(idle)
      await idle.lease.frames.close()
    }))
  }

  isStarted (): boolean {
    return this.started
  }

  /** Idle streams held, per host (peer id): for status and tests. */
  idleCounts (): Record<string, number> {
    return Object.fromEntries([...this.idle].map(([peer, list]) => [peer, list.length]))
  }

  /**
   * Whether `stream` waits in the pool for a request. Such a stream carries
   * no work, so it must not keep an on-demand connection open (the idle
   * closer asks); when the connection closes, the pool drops it.
   */
  isIdle (stream: Stream): boolean {
    return this.parked.has(stream)
  }

  /**
   * An idle stream to `peer`, or a new one (dialing when needed). Throws
   * SilentConnectionError when the connection to `peer` is silent (its
   * ping went unanswered): a stream on it would carry nothing, unless
   * `evenIfSilent` (the request has no other host to go to: the peer may be
   * only stalled, and waiting for it is all that is left).
   */
  async acquire (peer: PeerId, options: AbortOptions & { fresh?: boolean, evenIfSilent?: boolean }): Promise<StreamLease> {
    const key = peer.toString()
    const list = this.idle.get(key)
    while (options.fresh !== true && list != null && list.length > 0) {
      const idle = list.pop()!
      if (list.length === 0) this.idle.delete(key)
      this.unpark(idle)
      if (usable(idle.lease) && this.init.probe?.silence(idle.lease.connection) == null) return { ...idle.lease, reused: true }
      idle.lease.frames.abort(new Error('an idle model stream went stale'))
    }
    const connection = await this.components.connectionManager.openConnection(peer, options)
    const silence = options.evenIfSilent === true ? undefined : this.init.probe?.silence(connection)
    if (silence != null) throw silence
    const protocols = this.legacy.has(connection) ? [this.init.legacyProtocol] : [this.init.reuseProtocol, this.init.legacyProtocol]
    const stream = await connection.newStream(protocols, { ...options, runOnLimitedConnection: this.init.runOnLimitedConnection })
    const reusable = stream.protocol === this.init.reuseProtocol
    if (!reusable) this.legacy.add(connection)
    return { frames: new FrameStream(stream, { maxFrameBytes: this.init.maxFrameBytes }), connection, reusable, reused: false, nextId: 1 }
  }

  /**
   * Takes back a stream whose request ended with its final frame. Kept for
   * the next request when it can carry one and there is room; closed otherwise.
   */
  async release (lease: StreamLease): Promise<void> {
    const key = lease.connection.remotePeer.toString()
    const list = this.idle.get(key) ?? []
    if (!this.started || !lease.reusable || !usable(lease) || list.length >= this.maxIdlePerHost) {
      await lease.frames.close()
      return
    }
    const idle: IdleStream = {
      lease: { ...lease, reused: false },
      timer: setTimeout(() => { this.drop(key, idle, 'idle') }, this.idleTimeoutMs),
      // The host closed it (its own idle limit, a restart) or the connection died.
      onClose: () => { this.drop(key, idle, 'closed') }
    }
    idle.timer.unref()
    lease.frames.stream.addEventListener('close', idle.onClose)
    lease.frames.stream.addEventListener('remoteCloseWrite', idle.onClose)
    list.push(idle)
    this.idle.set(key, list)
    this.parked.add(lease.frames.stream)
  }

  private drop (key: string, idle: IdleStream, why: string): void {
    const list = this.idle.get(key)
    const at = list?.indexOf(idle) ?? -1
    if (at < 0) return
    list!.splice(at, 1)
    if (list!.length === 0) this.idle.delete(key)
    this.unpark(idle)
    this.log.trace('closing an idle model stream to %s (%s)', key, why)
    void idle.lease.frames.close()
  }

  private unpark (idle: IdleStream): void {
    this.parked.delete(idle.lease.frames.stream)
    clearTimeout(idle.timer)
    idle.lease.frames.stream.removeEventListener('close', idle.onClose)
    idle.lease.frames.stream.removeEventListener('remoteCloseWrite', idle.onClose)
  }
}

/** Whether a stream can carry another request: open both ways, its connection too, not paused. */
function usable (lease: StreamLease): boolean {
  const stream = lease.frames.stream
  return lease.connection.status === 'open' && stream.status === 'open' && stream.writeStatus === 'writable' &&
    stream.readStatus === 'readable' && stream.remoteWriteStatus === 'writable'
}
