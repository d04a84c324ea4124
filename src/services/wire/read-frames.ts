import { IdleTimeoutError, RemoteError } from './errors.js'
import { WakefulDeadline } from '../../node/wakeful-deadline.js'
import type { Frame } from './frame.js'
import type { FrameStream } from './frame-stream.js'

interface ReadUntilCommon {
  /** Called with every frame that is neither a keep-alive nor the one awaited. */
  onFrame?(frame: Frame): void
  /** Names the remote in errors. */
  remote: string
}

/**
 * The silence bound of a readUntil: a deadline the caller owns for a whole
 * request (`idle`, its parent the operation's signal; readUntil restarts it
 * when it starts waiting and on every frame, pauses it when it returns, and
 * the caller clears it), or the operation's signal and a length, for one call.
 */
export type ReadUntilOptions = ReadUntilCommon & ({ idle: WakefulDeadline } | {
  /** The operation's signal: cancellation and the overall deadline. */
  signal: AbortSignal
  /** Longest silence accepted between two frames (keep-alives count). */
  idleTimeoutMs: number
})

/**
 * Reads frames until one satisfies `isWanted`, which is returned. Keep-alives
 * only prove the remote alive; an `error` frame throws RemoteError; silence
 * longer than the idle bound throws IdleTimeoutError. Frames of unknown
 * types go to `onFrame`, so newer remotes can add informational frames.
 * The silence bound is one wakeful deadline restarted per frame: nothing
 * is allocated per frame, and a blocked event loop does not turn a frame
 * already in the socket into a timeout.
 */
export async function readUntil (frames: FrameStream, isWanted: (frame: Frame) => boolean, options: ReadUntilOptions): Promise<Frame> {
  if ('idle' in options) return await readFrames(frames, isWanted, options.idle, options)
  const idle = new WakefulDeadline(options.idleTimeoutMs, { signal: options.signal })
  try {
    return await readFrames(frames, isWanted, idle, options)
  } finally {
    idle.clear()
  }
}

async function readFrames (frames: FrameStream, isWanted: (frame: Frame) => boolean, idle: WakefulDeadline, options: ReadUntilCommon): Promise<Frame> {
  // Silence counts only while waiting: not while the consumer is busy between two calls.
  idle.restart()
  while (true) {
    let frame: Frame
    try {
      frame = await frames.read({ signal: idle.signal })
    } catch (err) {
      if (idle.expired) {
        throw new IdleTimeoutError(`no frame from ${options.remote} for ${idle.ms} ms; it may be frozen or unreachable`)
      }
      throw err
    }
    if (isWanted(frame)) {
      idle.pause()
      return frame
    }
    idle.restart()
    if (frame.type === 'keepalive') continue
    if (frame.type === 'error') {
      throw new RemoteError(String(frame.code ?? 'unknown'), `${options.remote}: ${String(frame.message ?? 'unspecified error')}`)
    }
    options.onFrame?.(frame)
  }
}
