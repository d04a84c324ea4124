import { setMaxListeners } from 'node:events'
import { IdleTimeoutError, RemoteError } from './errors.js'
import type { Frame } from './frame.js'
import type { FrameStream } from './frame-stream.js'

export interface ReadUntilOptions {
  /** The operation's signal: cancellation and the overall deadline. */
  signal: AbortSignal
  /** Longest silence accepted between two frames (keep-alives count). */
  idleTimeoutMs: number
  /** Called with every frame that is neither a keep-alive nor the one awaited. */
  onFrame?(frame: Frame): void
  /** Names the remote in errors. */
  remote: string
}

/**
 * Reads frames until one satisfies `isWanted`, which is returned. Keep-alives
 * only prove the remote alive; an `error` frame throws RemoteError; silence
 * longer than `idleTimeoutMs` throws IdleTimeoutError. Frames of unknown
 * types go to `onFrame`, so newer remotes can add informational frames.
 */
export async function readUntil (frames: FrameStream, isWanted: (frame: Frame) => boolean, options: ReadUntilOptions): Promise<Frame> {
  while (true) {
    const idle = AbortSignal.timeout(options.idleTimeoutMs)
    const signal = AbortSignal.any([options.signal, idle])
    setMaxListeners(Infinity, signal)
    let frame: Frame
    try {
      frame = await frames.read({ signal })
    } catch (err) {
      if (!options.signal.aborted && idle.aborted) {
        throw new IdleTimeoutError(`no frame from ${options.remote} for ${options.idleTimeoutMs} ms; it may be frozen or unreachable`)
      }
      throw err
    }
    if (isWanted(frame)) return frame
    if (frame.type === 'keepalive') continue
    if (frame.type === 'error') {
      throw new RemoteError(String(frame.code ?? 'unknown'), `${options.remote}: ${String(frame.message ?? 'unspecified error')}`)
    }
    options.onFrame?.(frame)
  }
}
