import { setMaxListeners } from 'node:events'
import { ClawmatrixProtocolError, StreamCutError } from './errors.js'
import { FrameStream } from './frame-stream.js'
import type { Frame } from './frame.js'
import type { Connection, Logger, Stream } from '@libp2p/interface'

export interface InboundInit {
  maxFrameBytes: number
  requestTimeoutMs: number
  log: Logger
}

/**
 * The receiver's side of a stream: reads the request frame within
 * `requestTimeoutMs` and hands it to `serve`. A malformed, oversized or
 * missing request, and anything `serve` throws, ends this stream with an
 * `error` frame; nothing escapes to libp2p, so the node keeps serving.
 */
export async function serveInbound (
  stream: Stream,
  connection: Connection,
  init: InboundInit,
  serve: (frames: FrameStream, request: Frame) => Promise<void>
): Promise<void> {
  const frames = new FrameStream(stream, { maxFrameBytes: init.maxFrameBytes })
  const remote = connection.remotePeer
  // Lines name the connection and stream, so one request can be followed among many; scoped only when enabled.
  const log = init.log.enabled ? init.log.newScope(`${connection.id}:${stream.id}`) : init.log
  let request: Frame
  try {
    request = await frames.read({ signal: AbortSignal.timeout(init.requestTimeoutMs) })
  } catch (err: any) {
    if (err instanceof StreamCutError) {
      log('%p closed the stream before sending a request', remote)
      frames.abort(err)
      return
    }
    const [code, message] = err instanceof ClawmatrixProtocolError
      ? [err.code, err.message]
      : err.name === 'TimeoutError' ? ['timeout', `no request within ${init.requestTimeoutMs} ms`] : ['internal', err.message]
    log('bad request from %p: %s', remote, message)
    await frames.fail(code, message)
    return
  }
  try {
    await serve(frames, request)
  } catch (err: any) {
    const code = err instanceof ClawmatrixProtocolError ? err.code : 'internal'
    log.error('%s stream from %p failed: %e', stream.protocol, remote, err)
    if (stream.status === 'open' && stream.writeStatus === 'writable') {
      await frames.fail(code, err.message)
    } else {
      frames.abort(err)
    }
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
