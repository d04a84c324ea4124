import { setMaxListeners } from 'node:events'
import { ClawmatrixProtocolError, StreamCutError } from './errors.js'
import { FrameStream } from './frame-stream.js'
import { WakefulDeadline } from '../../node/wakeful-deadline.js'
import type { Frame } from './frame.js'
import type { Connection, Logger, Stream } from '@libp2p/interface'

export interface InboundInit {
  maxFrameBytes: number
  requestTimeoutMs: number
  log: Logger
  /**
   * A stream that carries one request after another (`serve` resolved true:
   * the answer ended and the stream is still open): how long to wait for the
   * next request before closing the stream. Unset: one request per stream.
   */
  nextRequestTimeoutMs?: number
  /**
   * Told when a kept stream starts waiting for its next request (true) and
   * when the wait ends (false): a stream that waits carries no work, so it
   * must not keep an on-demand connection open.
   */
  onWaiting?(waiting: boolean): void
}

/**
 * The receiver's side of a stream: reads the request frame within
 * `requestTimeoutMs` and hands it to `serve`, with the stream's logger
 * (`init.log` scoped to the connection and stream when debug is on). A malformed, oversized or
 * missing request, and anything `serve` throws, ends this stream with an
 * `error` frame; nothing escapes to libp2p, so the node keeps serving.
 *
 * With `nextRequestTimeoutMs`, a request whose `serve` resolved true left
 * the stream open for another: the next one is read the same way, and the
 * stream closes once the caller closes it or sends nothing for that long.
 */
export async function serveInbound (
  stream: Stream,
  connection: Connection,
  init: InboundInit,
  serve: (frames: FrameStream, request: Frame, log: Logger) => Promise<boolean | void>
): Promise<void> {
  const frames = new FrameStream(stream, { maxFrameBytes: init.maxFrameBytes })
  const remote = connection.remotePeer
  // Lines name the connection and stream, so one request can be followed among many; scoped only when enabled.
  const log = init.log.enabled ? init.log.newScope(`${connection.id}:${stream.id}`) : init.log
  for (let served = 0; ; served++) {
    const waitMs = served === 0 ? init.requestTimeoutMs : init.nextRequestTimeoutMs!
    let request: Frame
    if (served > 0) init.onWaiting?.(true)
    try {
      request = await readRequest(frames, waitMs, served > 0)
    } catch (err: any) {
      if (served > 0 && (err instanceof StreamCutError || err.name === 'TimeoutError')) {
        // Between requests: the caller let the stream go, or kept it idle too long.
        await frames.release('idle between requests')
        return
      }
      if (err instanceof StreamCutError) {
        log('%p closed the stream before sending a request', remote)
        frames.abort(err)
        return
      }
      const [code, message] = err instanceof ClawmatrixProtocolError
        ? [err.code, err.message]
        : err.name === 'TimeoutError' ? ['timeout', `no request within ${waitMs} ms`] : ['internal', err.message]
      log('bad request from %p: %s', remote, message)
      await frames.fail(code, message)
      return
    } finally {
      if (served > 0) init.onWaiting?.(false)
    }
    let again: boolean | void
    try {
      again = await serve(frames, request, log)
    } catch (err: any) {
      const code = err instanceof ClawmatrixProtocolError ? err.code : 'internal'
      log.error('%s stream from %p failed: %e', stream.protocol, remote, err)
      if (stream.status === 'open' && stream.writeStatus === 'writable') {
        await frames.fail(code, err.message)
      } else {
        frames.abort(err)
      }
      return
    }
    if (again !== true || init.nextRequestTimeoutMs == null) return
    if (stream.status !== 'open' || stream.writeStatus !== 'writable' || stream.readStatus === 'closed') {
      // serve() ended the stream after all (cancelled, refused on the way out): nothing to wait for.
      return
    }
  }
}

/**
 * The next request frame. Between two requests a reused stream may still
 * carry a late `cancel` or `keepalive` of the one before: skipped.
 */
async function readRequest (frames: FrameStream, waitMs: number, reused: boolean): Promise<Frame> {
  // A host's synchronous work may block this process past the deadline while the request waits in the socket.
  const deadline = new WakefulDeadline(waitMs)
  try {
    while (true) {
      const frame = await frames.read({ signal: deadline.signal })
      if (!reused || (frame.type !== 'cancel' && frame.type !== 'keepalive')) return frame
    }
  } finally {
    deadline.clear()
  }
}

export type CallerEvent = 'cancel' | 'gone'

/**
 * Watches a caller while its work runs: resolves 'cancel' on a `cancel`
 * frame and 'gone' when the stream ends, is reset or carries a bad frame.
 * Other frames are ignored (a newer caller may send more kinds). Resolves
 * nothing once `signal` aborts, which ends the watch.
 */
export async function watchCaller (frames: FrameStream, signal: AbortSignal): Promise<CallerEvent | undefined> {
  setMaxListeners(Infinity, signal)
  while (true) {
    let frame: Frame
    try {
      frame = await frames.read({ signal })
    } catch (err: any) {
      if (signal.aborted) return undefined
      if (err instanceof ClawmatrixProtocolError && err.code !== 'stream-cut') {
        await frames.fail(err.code, err.message)
      }
      return 'gone'
    }
    if (frame.type === 'cancel') return 'cancel'
  }
}
