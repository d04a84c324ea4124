import { describeDialError } from '../../node/dial-errors.js'
import { type ProtocolComponents } from '../wire/components.js'
import { GOODBYE_TIMEOUT_MS } from '../wire/constants.js'
import { FrameTooLargeError, MalformedFrameError, RefusedError, RemoteError, SilentConnectionError, StreamCutError } from '../wire/errors.js'
import { ConnectionProbe } from '../wire/connection-probe.js'
import { type Frame } from '../wire/frame.js'
import { FrameStream } from '../wire/frame-stream.js'
import { watchCaller } from '../wire/inbound.js'
import { KeepAlive } from '../wire/keep-alive.js'
import { lostPath } from '../wire/path.js'
import { readUntil } from '../wire/read-frames.js'
import { checkFrame } from '../wire/request.js'
import { WakefulDeadline, withWakefulDeadline } from '../../node/wakeful-deadline.js'
import { mark } from '../wire/trace.js'
import { UpstreamError } from '../models/errors.js'
import { StreamProtocol, type StreamProtocolInit } from '../protocols/common.js'
import * as c from './constants.js'
import { DEFAULT_PROBE_AFTER_MS } from '../../config/schema.js'
import { answerCut, asUpstreamError, HostRefusedError, tooLarge } from './errors.js'
import { AnswerFrame, EndFrame, errorBodyOf, FailedFrame, ModelRequestFrame, RejectedFrame, type LoadField, type RejectCode } from './messages.js'
import { isBusy, type LocalModels } from './local-models.js'
import { ModelStreamPool, type StreamLease } from './stream-pool.js'
import type { ModelResponse, TokenUsage } from '../models/upstream.js'
import type { Connection, PeerId } from '@libp2p/interface'

export interface ModelProtocolInit extends StreamProtocolInit {
  /** The models this node serves to others. */
  models: LocalModels
  /** Caller: how long a host may take to start answering (after the stream opened). */
  answerTimeoutMs?: number
  /** Caller: opening the stream, dial included. */
  openTimeoutMs?: number
  /** Host: an answer's body goes out in frames of at most this many bytes of text. */
  chunkBytes?: number
  /** Host: called once per request served for another node, when it ended. */
  onServed?(served: ServedRequest): void
  /**
   * Caller: keep streams to hosts open between requests
   * (`/clawmatrix/model/1.1.0`); hosts that speak only 1.0.0 get a stream
   * per request as before. Hosts always accept both.
   *
   * @default true
   */
  reuseStreams?: boolean
  /** Caller: idle streams kept per host. @default 128 */
  maxIdleStreamsPerHost?: number
  /** Caller: an idle stream is closed after this long. @default 10_000 */
  idleStreamMs?: number
  /**
   * Caller: a request that heard nothing from its host this long after it
   * was sent has the connection under its stream pinged (the muxer's ping;
   * one at a time per connection, shared by the requests waiting on it), so
   * a connection that died silently is found in seconds, not when the
   * heartbeat gives the host up. A request answered sooner sends nothing
   * extra.
   *
   * @default 2_000
   */
  probeAfterMs?: number
  /**
   * Caller: a connection that answers that ping within this long is alive
   * and the request keeps waiting for its (slow) host; one that does not is
   * silent: the request fails with SilentConnectionError before its first
   * byte (the proxy moves on to the next host), and no request is sent on
   * that connection until a ping is answered or it closes.
   *
   * @default 3_000
   */
  probeTimeoutMs?: number
}

/** How one request is asked of a host. */
export interface ModelRequestOptions {
  /**
   * No other host is left to try: the request is sent and waited for even
   * on a connection found silent, and is not given up when its probe goes
   * unanswered. A host that only stalled (an OpenClaw gateway busy with its
   * own synchronous work) still answers; one that is gone fails as it did
   * before probes, when the heartbeat gives it up or the answer times out.
   *
   * @default false
   */
  lastResort?: boolean
}

/** A request this node served for another node. */
export interface ServedRequest {
  model: string
  route: string
  from: string
  /** 'refused' before the first byte, 'upstream-error' when the upstream refused, 'cancelled' when the caller left. */
  outcome: 'ok' | 'refused' | 'upstream-error' | 'failed' | 'cancelled'
  /** Body bytes sent. */
  bytes: number
  /** The upstream's token usage, when it said. */
  usage?: TokenUsage
  /** From the request frame to the end of the answer. */
  durationMs: number
}

/** Frame types that carry the answer; anything else (a newer host's extras) is skipped. */
const BODY_FRAMES = new Set(['chunk', 'end', 'failed'])

/** A host's answer, with its load for the model when it said. */
export interface HostResponse extends ModelResponse {
  load?: LoadField
}

/** Body text goes out in pieces of this size: JSON answers can be far larger than a frame. */
const CHUNK_BYTES = 256 * 1024

/** Buffered chunks are joined into one write up to about this much text. */
const MERGED_CHUNK_CHARS = 64 * 1024

const encoder = new TextEncoder()

/**
 * Why a served request's own signals end. Given as reasons because
 * `abort()` without one builds a DOMException with a stack trace, twice
 * per request on the host; nothing shows these to anyone.
 */
const ANSWERED = new Error('answered')
const SERVED = new Error('served')

/**
 * `/clawmatrix/model/1.0.0`: carries one OpenAI-style model request to a node
 * that hosts the model and streams the answer back as the upstream produces
 * it, with back-pressure both ways and an explicit end marker.
 *
 * Hosting: refuse before anything starts (not hosted here, busy, or the
 * upstream would not start answering: the caller then tries the next host),
 * keep-alives while the upstream is quiet, body chunks, then `end`; a
 * caller's `cancel` or disappearance cancels the upstream request.
 *
 * Calling: `request()` resolves once the host started answering; the body
 * ends normally only on `end`, and throws an UpstreamError when cut.
 */
export class ModelStreamProtocol extends StreamProtocol {
  private readonly models: LocalModels
  /** Caller: streams kept open between requests, when `reuseStreams` is on. */
  readonly pool?: ModelStreamPool
  /** Caller: pings the connection under a request that heard nothing for `probeAfterMs`. */
  private readonly probe: ConnectionProbe
  private readonly probeAfterMs: number

  constructor (components: ProtocolComponents, private readonly init: ModelProtocolInit) {
    super(components, c.MODEL_PROTOCOL_NAME, c.MODEL_PROTOCOL_VERSION, {
      maxInboundStreams: c.MAX_MODEL_INBOUND_STREAMS,
      maxOutboundStreams: c.MAX_MODEL_OUTBOUND_STREAMS,
      maxFrameBytes: c.MAX_REQUEST_BODY_BYTES + c.REQUEST_FRAME_OVERHEAD_BYTES,
      ...init
    }, { version: c.MODEL_PROTOCOL_REUSE_VERSION, nextRequestTimeoutMs: c.NEXT_REQUEST_TIMEOUT_MS })
    this.models = init.models
    this.probe = new ConnectionProbe({ timeoutMs: init.probeTimeoutMs, describePeer: init.describePeer })
    this.probeAfterMs = init.probeAfterMs ?? DEFAULT_PROBE_AFTER_MS
    if (init.reuseStreams !== false) {
      this.pool = new ModelStreamPool(components, {
        reuseProtocol: this.reuseProtocol!,
        legacyProtocol: this.protocol,
        maxFrameBytes: this.settings.maxFrameBytes,
        runOnLimitedConnection: this.settings.runOnLimitedConnection,
        maxIdlePerHost: init.maxIdleStreamsPerHost,
        idleTimeoutMs: init.idleStreamMs,
        probe: this.probe
      }, this.log)
    }
  }

  override async start (): Promise<void> {
    await super.start()
    this.pool?.start()
  }

  override async stop (): Promise<void> {
    await this.pool?.stop()
    await super.stop()
  }

  /**
   * Asks `peer` for a model answer. Resolves once the host's upstream
   * started answering. Throws HostRefusedError when the host refused
   * before the first byte (with the upstream's error when it was the
   * upstream), RefusedError when it could not be reached or said nothing in
   * time, SilentConnectionError when its connection stopped answering pings,
   * and the signal's reason when aborted. Aborting later, or leaving
   * the body early, cancels the request on the host.
   */
  async request (peer: PeerId, request: ModelRequestFrame, signal: AbortSignal, options: ModelRequestOptions = {}): Promise<HostResponse> {
    try {
      return await this.attempt(peer, request, signal, false, options)
    } catch (err) {
      if (!(err instanceof StaleStreamError)) throw err
      // A kept stream died while idle (the host restarted, the connection dropped): once more on a new one.
      this.log('a kept model stream to %p was gone: %s', peer, err.message)
      return await this.attempt(peer, request, signal, true, options)
    }
  }

  /** One try on one stream: a kept one unless `fresh`. */
  private async attempt (peer: PeerId, request: ModelRequestFrame, signal: AbortSignal, fresh: boolean, options: ModelRequestOptions): Promise<HostResponse> {
    // Errors name the host by its node's name when the view knows it.
    const remote = this.peerName(peer)
    // Every wait on the host is wakeful: a process blocked past a deadline still reads what arrived meanwhile.
    const open = new WakefulDeadline(this.init.openTimeoutMs ?? c.OPEN_TIMEOUT_MS, { signal })
    let lease: StreamLease
    try {
      lease = this.pool != null
        ? await this.pool.acquire(peer, { signal: open.signal, fresh, evenIfSilent: options.lastResort })
        : await this.openOnce(peer, open.signal, options.lastResort === true)
    } catch (err: any) {
      if (signal.aborted) throw signal.reason
      if (err instanceof SilentConnectionError) throw err
      throw new RefusedError('unreachable', `cannot open a model stream to ${remote}: ${describe(err)}`)
    } finally {
      open.clear()
    }
    mark('caller: stream ready')
    const { frames, connection } = lease
    const id = lease.reusable ? lease.nextId++ : undefined

    const answerTimeoutMs = this.init.answerTimeoutMs ?? c.ANSWER_TIMEOUT_MS
    const answered = new WakefulDeadline(answerTimeoutMs, { signal })
    // The last host has nowhere to move the request to: a stalled host is waited for, as before probes.
    const watch = options.lastResort === true ? undefined : new SilenceWatch(this.probe, connection, answered, this.probeAfterMs)
    try {
      await frames.write(id == null ? request : { ...request, id }, { signal: answered.signal })
      frames.flush()
      mark('caller: request sent')
      const first = await readUntil(frames, frame => frame.type === 'answer' || frame.type === 'rejected', {
        signal: answered.signal,
        idleTimeoutMs: this.settings.idleTimeoutMs,
        remote
      })
      watch?.stop()
      mark('caller: answer read')
      checkId(first, id, remote)
      if (first.type === 'rejected') {
        const rejected = checkFrame(RejectedFrame, first, `model refusal from ${remote}`)
        const upstream = rejected.status != null && rejected.error != null ? new UpstreamError(rejected.status, errorBodyOf(rejected.error)) : undefined
        const refused = new HostRefusedError(rejected.code, rejected.message, upstream)
        refused.load = rejected.load
        await this.finish(lease)
        throw refused
      }
      const answer = checkFrame(AnswerFrame, first, `model answer from ${remote}`)
      let usage: TokenUsage | undefined
      const body = this.answerBody(lease, id, remote, signal, found => { usage = found })
      return { status: answer.status, contentType: answer.contentType, load: answer.load, body, usage: () => usage }
    } catch (err: any) {
      if (err instanceof HostRefusedError) throw err
      if (watch?.silence != null && !signal.aborted) {
        // Nothing reaches the host: no cancel, no close exchange. The stream ends here, never back in the pool.
        frames.abort(watch.silence)
        throw watch.silence
      }
      await abandon(frames, signal.aborted)
      if (signal.aborted) throw signal.reason
      if (lease.reused && !answered.expired && (err instanceof StreamCutError || frames.stream.status !== 'open')) {
        throw new StaleStreamError(err.message, { cause: err })
      }
      // The relay under it died before the host answered: the caller tries another path.
      const lost = await lostPath(connection, peer, false, err, this.describePeer)
      if (lost != null) throw lost
      if (err instanceof FrameTooLargeError) throw new HostRefusedError('too-large', err.message, tooLarge(`the request body is over the proxy's limit of ${c.MAX_REQUEST_BODY_BYTES} bytes`))
      if (answered.expired) throw new RefusedError('answer-timeout', `${remote} did not start answering within ${answerTimeoutMs} ms`)
      throw err
    } finally {
      watch?.stop()
      answered.clear()
    }
  }

  /** A stream for this request alone (`/clawmatrix/model/1.0.0`), as before streams were kept. */
  private async openOnce (peer: PeerId, signal: AbortSignal, evenIfSilent: boolean): Promise<StreamLease> {
    const connection = await this.components.connectionManager.openConnection(peer, { signal })
    // A connection found silent carries nothing: opening a stream on it would wait out the open timeout.
    const silence = evenIfSilent ? undefined : this.probe.silence(connection)
    if (silence != null) throw silence
    const stream = await connection.newStream(this.protocol, {
      signal,
      runOnLimitedConnection: this.settings.runOnLimitedConnection,
      // The protocol id goes out with the request instead of a round trip before it.
      negotiateFully: false
    })
    const frames = new FrameStream(stream, { maxFrameBytes: this.settings.maxFrameBytes })
    return { frames, connection, reusable: false, reused: false, nextId: 1 }
  }

  /** A request ended with its final frame: the stream goes back to the pool, or is closed. */
  private async finish (lease: StreamLease): Promise<void> {
    if (this.pool != null) await this.pool.release(lease)
    else await lease.frames.close()
  }

  /**
   * The answer's chunks as they arrive; pulled, so a slow reader leaves
   * frames unread and the reader pauses the stream, which stops the host.
   */
  private async * answerBody (lease: StreamLease, id: number | undefined, remote: string, signal: AbortSignal, onUsage: (usage: TokenUsage) => void): AsyncGenerator<Uint8Array> {
    const { frames, connection } = lease
    // One silence bound for the whole body, restarted by every frame: nothing per chunk.
    const idle = new WakefulDeadline(this.settings.idleTimeoutMs, { signal })
    let ended = false
    let next: Frame | undefined
    let first = true
    try {
      while (true) {
        const frame = next ?? await readUntil(frames, frame => BODY_FRAMES.has(frame.type), { idle, remote })
        next = undefined
        if (frame.type === 'chunk') {
          // Chunks that arrived in one message leave in one write to the client.
          let data = chunkData(frame, remote)
          while (data.length < MERGED_CHUNK_CHARS && (next = frames.readBuffered())?.type === 'chunk') {
            data += chunkData(next!, remote)
            next = undefined
          }
          if (first) {
            first = false
            mark('caller: first chunk read')
          }
          yield encoder.encode(data)
          continue
        }
        if (!BODY_FRAMES.has(frame.type)) {
          // Taken from the buffer above: what readUntil does with it.
          if (frame.type === 'error') throw new RemoteError(String(frame.code ?? 'unknown'), `${remote}: ${String(frame.message ?? 'unspecified error')}`)
          continue
        }
        checkId(frame, id, remote)
        ended = true
        await this.finish(lease)
        if (frame.type === 'end') {
          if (frame.usage != null) {
            const end = checkFrame(EndFrame, frame, `answer end from ${remote}`)
            if (end.usage != null) onUsage(end.usage)
          }
          return
        }
        const failed = checkFrame(FailedFrame, frame, `answer failure from ${remote}`)
        throw new UpstreamError(failed.status, errorBodyOf(failed.error))
      }
    } catch (err: any) {
      if (signal.aborted) throw signal.reason
      if (err instanceof UpstreamError) throw err
      const lost = await lostPath(connection, connection.remotePeer, true, err, this.describePeer)
      throw answerCut(`the answer from ${remote} was cut before its end: ${lost?.message ?? err.message}`)
    } finally {
      idle.clear()
      // Left early (the client went away), aborted, or cut: stop the host's work.
      if (!ended) await abandon(frames, true)
    }
  }

  protected async serve (frames: FrameStream, frame: Frame, connection: Connection, reuse: boolean): Promise<boolean> {
    mark('host: request read')
    const request = checkFrame(ModelRequestFrame, frame, 'model request')
    const from = connection.remotePeer.toString()
    const started = performance.now()
    const served: ServedRequest = { model: request.model, route: request.route, from, outcome: 'refused', bytes: 0, durationMs: 0 }
    const caller = new AbortController()
    const watch = new AbortController()
    const keepAlive = new KeepAlive(frames, this.settings.keepAliveIntervalMs)
    /**
     * Writes the request's final frame. Nothing of this request may follow
     * it on a reused stream: keep-alives and the watch for `cancel` stop
     * first (the caller's next request may come right after).
     */
    const final = async (frame: Frame, signal: AbortSignal): Promise<void> => {
      keepAlive.stop()
      watch.abort(ANSWERED)
      await frames.write(request.id == null ? frame : { ...frame, id: request.id }, { signal })
      if (!reuse) await frames.close()
    }
    try {
      const wait = request.wait === true
      const refusal = this.models.refusal(request.model, { wait })
      if (refusal != null) {
        await this.reject(final, from, refusal.code, refusal.message, undefined, this.models.load(request.model))
        return reuse
      }
      keepAlive.start()
      // The caller says nothing after its request unless it cancels or goes away.
      void watchCaller(frames, watch.signal).then(event => {
        if (event != null) caller.abort(new Error(event === 'cancel' ? 'cancelled by the caller' : 'the caller went away'))
      })
      let response: ModelResponse
      try {
        response = await this.models.request(request.model, { route: request.route, body: request.body, signal: caller.signal }, { wait })
      } catch (err) {
        if (caller.signal.aborted) {
          served.outcome = 'cancelled'
          return false
        }
        if (isBusy(err)) {
          // Waited in the queue without getting a slot: full, not failing.
          await this.reject(final, from, 'busy', (err as UpstreamError).message, undefined, this.models.load(request.model))
          return reuse
        }
        const upstream = asUpstreamError(err)
        served.outcome = 'upstream-error'
        await this.reject(final, from, 'upstream-error', upstream.message, upstream, this.models.load(request.model))
        return reuse
      }
      mark('host: upstream answered')
      const answer: Frame = { type: 'answer', status: response.status, contentType: response.contentType, load: this.models.load(request.model) }
      // With the first chunk when the upstream's read that brings it is already pending (sendBody flushes then).
      await frames.write(request.id == null ? answer : { ...answer, id: request.id }, { signal: caller.signal, afterPendingIo: true })
      mark('host: answer queued')
      served.outcome = await this.sendBody(frames, response, caller.signal, served, final)
      return reuse
    } catch (err) {
      if (!callerGone(frames, caller.signal)) throw err
      served.outcome = 'cancelled'
      return false
    } finally {
      keepAlive.stop()
      watch.abort(ANSWERED)
      if (served.outcome === 'cancelled') {
        this.log('caller %s left %s %s', from, request.model, request.route)
        await frames.release('the caller left')
      }
      caller.abort(SERVED)
      served.durationMs = performance.now() - started
      this.init.onServed?.(served)
    }
  }

  /** Streams the body, then `end` (or `failed` when the upstream broke off). */
  private async sendBody (frames: FrameStream, response: ModelResponse, signal: AbortSignal, served: ServedRequest, final: FinalWrite): Promise<ServedRequest['outcome']> {
    const decoder = new TextDecoder()
    const chunkBytes = this.init.chunkBytes ?? CHUNK_BYTES
    const send = async (data: string): Promise<void> => {
      if (data === '') return
      await frames.write({ type: 'chunk', data }, { signal })
    }
    let first = true
    try {
      for await (const bytes of response.body) {
        if (first) {
          first = false
          mark('host: first upstream chunk')
        }
        for (let at = 0; at < bytes.byteLength; at += chunkBytes) {
          // Decoding in stream mode keeps a character split across two pieces whole.
          await send(decoder.decode(bytes.subarray(at, at + chunkBytes), { stream: true }))
        }
        if (served.bytes === 0) {
          // The caller's first byte: out now with the answer frame, not after the chunks already buffered behind it.
          frames.flush()
          mark('host: first chunk sent')
        }
        served.bytes += bytes.byteLength
      }
      await send(decoder.decode())
    } catch (err) {
      // A write that failed because the caller left is not the upstream's failure.
      if (callerGone(frames, signal)) throw err
      const upstream = asUpstreamError(err)
      this.log('upstream failed mid-answer: %s', upstream.message)
      await final({ type: 'failed', status: upstream.status, error: upstream.body }, signal)
      return 'failed'
    }
    served.usage = response.usage?.()
    await final(served.usage == null ? { type: 'end' } : { type: 'end', usage: served.usage }, signal)
    return 'ok'
  }

  private async reject (final: FinalWrite, from: string, code: RejectCode, message: string, upstream?: UpstreamError, load?: LoadField): Promise<void> {
    this.log('refused a model request from %s: %s', from, message)
    const frame: Frame = { type: 'rejected', code, message }
    if (upstream != null) Object.assign(frame, { status: upstream.status, error: upstream.body })
    if (load != null) frame.load = load
    await withWakefulDeadline(GOODBYE_TIMEOUT_MS, async signal => { await final(frame, signal) })
  }
}

/** Writes a request's final frame (and closes the stream unless it is reused). */
type FinalWrite = (frame: Frame, signal: AbortSignal) => Promise<void>

/**
 * On a reused stream, the first and final frames of a request must carry
 * its id: anything else is another request's frame, and the stream is
 * not trusted further.
 */
function checkId (frame: Frame, id: number | undefined, remote: string): void {
  if (id != null && frame.id !== id) {
    throw new MalformedFrameError(`"${frame.type}" frame from ${remote} is for request ${String(frame.id)}, not ${id}`, 'bad-frame')
  }
}

/**
 * Watches a request until its host's first frame: after `afterMs` of
 * silence it probes the connection under the stream once, and when that
 * connection is silent fails the request's deadline with the
 * SilentConnectionError (kept in `silence`). A request answered sooner costs
 * one timer.
 */
class SilenceWatch {
  silence?: SilentConnectionError
  private timer?: ReturnType<typeof setTimeout>
  /** Ends a probe under way when the answer came first. */
  private answered?: AbortController

  constructor (private readonly probe: ConnectionProbe, private readonly connection: Connection, private readonly deadline: WakefulDeadline, afterMs: number) {
    this.timer = setTimeout(this.fire, afterMs)
    this.timer.unref()
  }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.answered?.abort()
  }

  private readonly fire = (): void => {
    this.timer = undefined
    this.answered = new AbortController()
    const signal = AbortSignal.any([this.deadline.signal, this.answered.signal])
    void this.probe.probe(this.connection, signal).then(alive => {
      if (alive !== false || signal.aborted) return
      this.silence = this.probe.silence(this.connection)
      // No silence: the connection closed meanwhile, and the read fails on its own.
      if (this.silence != null) this.deadline.abort(this.silence)
    })
  }
}

/** A kept stream that turned out dead before it carried the request: worth one more try on a new stream. */
class StaleStreamError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'StaleStreamError'
  }
}

/** A chunk's text; the hot path checks one field instead of walking a schema per chunk. */
function chunkData (frame: Frame, remote: string): string {
  if (typeof frame.data !== 'string') throw new MalformedFrameError(`answer chunk from ${remote}: data: expected string`, 'bad-frame')
  return frame.data
}

/** Whether the caller cancelled, or its stream can no longer carry the answer. */
function callerGone (frames: FrameStream, signal: AbortSignal): boolean {
  return signal.aborted || frames.stream.status !== 'open' || frames.stream.writeStatus !== 'writable'
}

/** Gives a stream up: `cancel` (best effort) when asked, then close or reset, as OutboundExchange does. */
async function abandon (frames: FrameStream, cancel: boolean): Promise<void> {
  if (frames.stream.status !== 'open' || frames.stream.writeStatus !== 'writable') {
    frames.abort(new Error('model request abandoned'))
    return
  }
  if (cancel) {
    try {
      await withWakefulDeadline(GOODBYE_TIMEOUT_MS, async signal => { await frames.write({ type: 'cancel' }, { signal }) })
    } catch {}
  }
  await frames.release('model request abandoned')
}

/**
 * A failed open in words an operator can act on (../../node/dial-errors.ts),
 * never a libp2p class name or status code. A dial that tried several
 * addresses carries each one's reason in `errors`: every distinct reason is
 * kept, joined, and a failed WebSocket's bare ErrorEvent is named as such.
 */
function describe (err: any): string {
  if (err?.error != null && err.error !== err) return describe(err.error)
  const nested: unknown[] = Array.isArray(err?.errors) ? err.errors : []
  if (nested.length > 0) return [...new Set(nested.map(describe))].join('; ')
  return describeDialError(err)
}
