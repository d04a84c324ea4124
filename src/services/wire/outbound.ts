import { GOODBYE_TIMEOUT_MS } from './constants.js'
import { RefusedError } from './errors.js'
import { FrameStream } from './frame-stream.js'
import { lostPath, openRoutedStream, type PeerDescriber } from './path.js'
import { readUntil } from './read-frames.js'
import { WakefulDeadline, withWakefulDeadline } from '../../node/wakeful-deadline.js'
import type { ProtocolComponents } from './components.js'
import type { Frame } from './frame.js'
import type { Connection, PeerId } from '@libp2p/interface'

export interface OutboundInit {
  components: ProtocolComponents
  protocol: string
  maxFrameBytes: number
  acceptTimeoutMs: number
  idleTimeoutMs: number
  runOnLimitedConnection: boolean
  /** Names peers (and says their state) in errors about a lost path. */
  describePeer?: PeerDescriber
}

/**
 * The caller's side of one request on one stream: opens the stream, sends
 * the request, waits for the first answer (`accepted`, `rejected`,
 * `delivered` ...), then reads to the final frame. Aborting the signal
 * sends `cancel` so the remote stops its work, then closes the stream.
 */
export class OutboundExchange {
  private constructor (
    readonly peer: PeerId,
    private readonly frames: FrameStream,
    private readonly connection: Connection,
    private readonly init: OutboundInit
  ) {}

  /**
   * Resolves with the exchange and the remote's first answer once it is not
   * a refusal. A `rejected` answer throws RefusedError; the accept phase is
   * also bounded by `acceptTimeoutMs` (the init's unless given). A relayed connection that closed
   * before the answer throws PathLostError (the caller may try another path).
   */
  static async open (init: OutboundInit, peer: PeerId, request: Frame, signal: AbortSignal, acceptTimeoutMs = init.acceptTimeoutMs): Promise<{ exchange: OutboundExchange, answer: Frame }> {
    // Wakeful: a process blocked past the deadline still reads an answer that arrived meanwhile.
    const accept = new WakefulDeadline(acceptTimeoutMs, { signal })
    let exchange: OutboundExchange | undefined
    let connection: Connection | undefined
    try {
      const routed = await openRoutedStream(init.components, peer, init.protocol, {
        signal: accept.signal,
        runOnLimitedConnection: init.runOnLimitedConnection
      })
      connection = routed.connection
      const frames = new FrameStream(routed.stream, { maxFrameBytes: init.maxFrameBytes })
      exchange = new OutboundExchange(peer, frames, connection, init)
      await frames.write(request, { signal: accept.signal })
      const answer = await readUntil(frames, frame => frame.type !== 'keepalive' && frame.type !== 'error', {
        signal: accept.signal,
        idleTimeoutMs: acceptTimeoutMs,
        remote: nameOf(init, peer)
      })
      if (answer.type === 'rejected') {
        throw new RefusedError(String(answer.code ?? 'refused'), String(answer.message ?? `${nameOf(init, peer)} refused the request`))
      }
      return { exchange, answer }
    } catch (err: any) {
      // Not opened at all: the dial's own error says why.
      if (exchange == null || connection == null) throw err
      await exchange.abandon(signal.aborted)
      if (signal.aborted) throw err
      const lost = await lostPath(connection, peer, false, err, init.describePeer)
      if (lost != null) throw lost
      if (accept.expired) {
        throw new RefusedError('accept-timeout', `${nameOf(init, peer)} did not answer within ${acceptTimeoutMs} ms`)
      }
      throw err
    } finally {
      accept.clear()
    }
  }

  /**
   * Reads until a frame whose type is in `finalTypes`, passing the frames
   * before it to `onFrame`. On any failure the stream is given up (with a
   * `cancel` first when the caller aborted).
   */
  async finish (finalTypes: string[], signal: AbortSignal, onFrame?: (frame: Frame) => void): Promise<Frame> {
    try {
      // One silence bound for the whole answer, restarted by every frame.
      const final = await readUntil(this.frames, frame => finalTypes.includes(frame.type), {
        signal,
        idleTimeoutMs: this.init.idleTimeoutMs,
        onFrame,
        remote: nameOf(this.init, this.peer)
      })
      await this.frames.close()
      return final
    } catch (err) {
      await this.abandon(signal.aborted)
      throw (signal.aborted ? undefined : await lostPath(this.connection, this.peer, true, err, this.init.describePeer)) ?? err
    }
  }

  /** Ends an exchange whose first answer was already final (e.g. `delivered`). */
  async close (): Promise<void> {
    await this.frames.close()
  }

  /** Gives the stream up: `cancel` (best effort) when asked, then close or reset. */
  private async abandon (cancel: boolean): Promise<void> {
    if (this.frames.stream.status !== 'open' || this.frames.stream.writeStatus !== 'writable') {
      this.frames.abort(new Error('exchange abandoned'))
      return
    }
    if (cancel) {
      try {
        await withWakefulDeadline(GOODBYE_TIMEOUT_MS, async signal => { await this.frames.write({ type: 'cancel' }, { signal }) })
      } catch {}
    }
    await this.frames.release('exchange abandoned')
  }
}

/** The node's name in errors (its peer id only when the view does not know it). */
function nameOf (init: OutboundInit, peer: PeerId): string {
  return init.describePeer?.name(peer.toString()) ?? peer.toString()
}
