import { type ProtocolComponents } from '../wire/components.js'
import { ACCEPT_TIMEOUT_MS, IDLE_TIMEOUT_MS, KEEPALIVE_INTERVAL_MS, MAX_FRAME_BYTES, PROTOCOL_PREFIX, REQUEST_TIMEOUT_MS } from '../wire/constants.js'
import { type Frame } from '../wire/frame.js'
import { type FrameStream } from '../wire/frame-stream.js'
import { serveInbound } from '../wire/inbound.js'
import { type OutboundInit } from '../wire/outbound.js'
import { type PeerDescriber } from '../wire/path.js'
import { protocolId } from '../wire/protocol-id.js'
import { WakefulDeadline } from '../../node/wakeful-deadline.js'
import { MAX_INBOUND_STREAMS, MAX_OUTBOUND_STREAMS } from './constants.js'
import { SHUTTING_DOWN } from '../shutdown.js'
import { auditServed, type WorkAudit } from '../audit/served-work.js'
import type { Connection, Logger, PeerId, Startable, Stream } from '@libp2p/interface'

/** Options every clawmatrix work protocol takes; all have defaults. */
export interface StreamProtocolInit {
  protocolPrefix?: string
  maxInboundStreams?: number
  maxOutboundStreams?: number
  /** Serve and dial over relayed (limited) connections too; default true, as members often meet through a relay. */
  runOnLimitedConnection?: boolean
  maxFrameBytes?: number
  /** Receiver: a keep-alive after this much silence while working. */
  keepAliveIntervalMs?: number
  /** Caller: give up after this much silence (no frame, not even a keep-alive). */
  idleTimeoutMs?: number
  /** Caller: wait this long for accepted/rejected before trying the next candidate. */
  acceptTimeoutMs?: number
  /** Receiver: wait this long for the request frame. */
  requestTimeoutMs?: number
  /**
   * Receiver: a reason to refuse every new request before serving it (the
   * node is shutting down), or undefined to serve; refused with code
   * `shutting-down`, so a caller moves on to its next candidate.
   */
  refuse?: () => string | undefined
  /** Receiver: a refusal for one request before it is served (per-caller policy); default: serve everything. */
  admit?: (request: Frame, connection: Connection) => { code: string, message: string } | undefined
  /** Receiver: appends every served request to the node's audit log. */
  audit?: WorkAudit
  /** Caller: names peers and says their state in errors (a relay that died under a request). */
  describePeer?: PeerDescriber
}

type Settings = Required<Omit<StreamProtocolInit, 'refuse' | 'admit' | 'audit' | 'describePeer'>>

/**
 * What the three protocols share, after js-libp2p's ping: a protocol id from
 * prefix/name/version, a handler registered with stream limits, and
 * settings with defaults. Subclasses serve one request per stream.
 */
export abstract class StreamProtocol implements Startable {
  readonly protocol: string
  protected readonly settings: Settings
  protected readonly log: Logger
  private readonly refuse?: () => string | undefined
  private readonly admit: StreamProtocolInit['admit']
  private readonly audit?: WorkAudit
  protected readonly describePeer?: PeerDescriber
  /** The id of the version whose streams carry one request after another, when the protocol has one. */
  readonly reuseProtocol?: string
  /** How long a reused stream may wait for its next request. */
  private readonly nextRequestTimeoutMs?: number
  /** Reused streams waiting for their caller's next request; libp2p owns the streams, so weakly. */
  private readonly waiting = new WeakSet<Stream>()
  private started = false

  constructor (protected readonly components: ProtocolComponents, name: string, version: string, init: StreamProtocolInit, reuse?: { version: string, nextRequestTimeoutMs: number }) {
    this.settings = {
      protocolPrefix: init.protocolPrefix ?? PROTOCOL_PREFIX,
      maxInboundStreams: init.maxInboundStreams ?? MAX_INBOUND_STREAMS,
      maxOutboundStreams: init.maxOutboundStreams ?? MAX_OUTBOUND_STREAMS,
      runOnLimitedConnection: init.runOnLimitedConnection ?? true,
      maxFrameBytes: init.maxFrameBytes ?? MAX_FRAME_BYTES,
      keepAliveIntervalMs: init.keepAliveIntervalMs ?? KEEPALIVE_INTERVAL_MS,
      idleTimeoutMs: init.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
      acceptTimeoutMs: init.acceptTimeoutMs ?? ACCEPT_TIMEOUT_MS,
      requestTimeoutMs: init.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
    }
    this.refuse = init.refuse
    this.admit = init.admit
    this.audit = init.audit
    this.describePeer = init.describePeer
    this.protocol = protocolId(this.settings.protocolPrefix, name, version)
    if (reuse != null) {
      this.reuseProtocol = protocolId(this.settings.protocolPrefix, name, reuse.version)
      this.nextRequestTimeoutMs = reuse.nextRequestTimeoutMs
    }
    this.log = components.logger.forComponent(`clawmatrix:${name}`)
  }

  async start (): Promise<void> {
    const options = {
      maxInboundStreams: this.settings.maxInboundStreams,
      maxOutboundStreams: this.settings.maxOutboundStreams,
      runOnLimitedConnection: this.settings.runOnLimitedConnection
    }
    await this.components.registrar.handle(this.protocol, this.handleStream, options)
    if (this.reuseProtocol != null) await this.components.registrar.handle(this.reuseProtocol, this.handleReusedStream, options)
    this.started = true
  }

  async stop (): Promise<void> {
    await this.components.registrar.unhandle(this.protocol)
    if (this.reuseProtocol != null) await this.components.registrar.unhandle(this.reuseProtocol)
    this.started = false
  }

  isStarted (): boolean {
    return this.started
  }

  /**
   * Serves one validated-as-a-frame request on its stream; the frame's own
   * schema is the subclass's to check. On a `reuse` stream (the protocol's
   * reuse version) it resolves true when the answer ended and the stream
   * stays open for the caller's next request; otherwise it closes the stream.
   * `log` is the stream's: its lines name the connection and stream.
   */
  protected abstract serve (frames: FrameStream, request: Frame, connection: Connection, reuse: boolean, log: Logger): Promise<boolean | void>

  /**
   * Whether `stream` is a reused stream waiting for its caller's next
   * request: it carries no work, so it does not keep an on-demand
   * connection open (the idle closer asks).
   */
  isWaiting (stream: Stream): boolean {
    return this.waiting.has(stream)
  }

  /** A peer as errors name it: its node's name when the view knows it. */
  protected peerName (peer: PeerId): string {
    return this.describePeer?.name(peer.toString()) ?? peer.toString()
  }

  /**
   * How long a caller waits for a candidate's first answer. The accept
   * timeout is there to move on to the next candidate; the last one has no
   * successor, so it gets the silence any exchange is allowed (the idle
   * timeout): a host that stalls its thread for a while (an OpenClaw
   * gateway in synchronous SQLite writes, waiting on its own store worker)
   * is slow, not gone, and a gone one is cut by the heartbeat anyway.
   */
  protected acceptTimeoutFor (last: boolean): number {
    return last ? Math.max(this.settings.acceptTimeoutMs, this.settings.idleTimeoutMs) : this.settings.acceptTimeoutMs
  }

  protected get outbound (): OutboundInit {
    return {
      components: this.components,
      protocol: this.protocol,
      maxFrameBytes: this.settings.maxFrameBytes,
      acceptTimeoutMs: this.settings.acceptTimeoutMs,
      idleTimeoutMs: this.settings.idleTimeoutMs,
      runOnLimitedConnection: this.settings.runOnLimitedConnection,
      describePeer: this.describePeer
    }
  }

  private readonly handleStream = async (stream: Stream, connection: Connection): Promise<void> => {
    await this.handle(stream, connection, false)
  }

  private readonly handleReusedStream = async (stream: Stream, connection: Connection): Promise<void> => {
    await this.handle(stream, connection, true)
  }

  private async handle (stream: Stream, connection: Connection, reuse: boolean): Promise<void> {
    await serveInbound(stream, connection, {
      maxFrameBytes: this.settings.maxFrameBytes,
      requestTimeoutMs: this.settings.requestTimeoutMs,
      nextRequestTimeoutMs: reuse ? this.nextRequestTimeoutMs : undefined,
      onWaiting: waiting => {
        if (waiting) this.waiting.add(stream)
        else this.waiting.delete(stream)
      },
      log: this.log
    }, async (frames, request, log) => {
      const audited = this.audit == null ? undefined : auditServed(this.audit, frames, request, connection)
      let failure: unknown
      try {
        return await this.serveAdmitted(frames, request, connection, reuse, log)
      } catch (err) {
        failure = err
        throw err
      } finally {
        audited?.end(failure)
      }
    })
  }

  /** Refuses when the node is shutting down or the caller's policy says no; serves otherwise. */
  private async serveAdmitted (frames: FrameStream, request: Frame, connection: Connection, reuse: boolean, log: Logger): Promise<boolean | void> {
    const shutdown = this.refuse?.()
    const refusal = shutdown != null ? { code: SHUTTING_DOWN, message: shutdown } : this.admit?.(request, connection)
    if (refusal != null) {
      log('refused a %s request from %p: %s', request.type, connection.remotePeer, refusal.message)
      // A request id (model streams that carry several requests) is echoed, so the caller can tell whose refusal it is.
      const id = typeof request.id === 'string' || (reuse && typeof request.id === 'number') ? { id: request.id } : {}
      await frames.write({ type: 'rejected', ...id, ...refusal })
      await frames.close()
      return
    }
    return await this.serve(frames, request, connection, reuse, log)
  }
}

/**
 * `signal` and an optional deadline for a whole call as one signal;
 * `deadline.expired` tells that it fired, and the caller clears it when the
 * call ends. Wakeful: the remote's result may be in the socket when a
 * blocked process resumes past it.
 */
export function withDeadline (signal: AbortSignal | undefined, timeoutMs: number | undefined): { signal: AbortSignal, deadline?: WakefulDeadline } {
  if (timeoutMs == null) return { signal: signal ?? new AbortController().signal }
  const deadline = new WakefulDeadline(timeoutMs, { signal })
  return { signal: deadline.signal, deadline }
}

/**
 * Calls `fn` once the event loop has had a turn for the I/O queued so far:
 * an answer just written leaves the process before work that may hold the
 * thread starts.
 */
export function afterPendingIo (fn: () => void): void {
  setImmediate(fn)
}
