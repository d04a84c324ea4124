import { setTimeout as delay } from 'node:timers/promises'
import { FAILED_STREAM_LINGER_MS, GOODBYE_TIMEOUT_MS, MAX_FRAME_BYTES, READ_HIGH_WATER_BYTES, READ_LOW_WATER_BYTES } from './constants.js'
import { encodeFrame, type Frame } from './frame.js'
import { FrameReader } from './frame-reader.js'
import { StreamCutError } from './errors.js'
import type { AbortOptions, Stream, StreamCloseEvent } from '@libp2p/interface'

export interface FrameStreamInit {
  maxFrameBytes?: number
}

export interface ReadOptions {
  /** Every read is bounded: pass a deadline or the operation's signal. */
  signal: AbortSignal
}

/**
 * Frames over one libp2p stream. Reads are bounded by an AbortSignal and
 * size-checked, and pause the stream while the consumer is behind; writes
 * are queued in order and wait for the stream to drain when `send()`
 * reports back-pressure, so neither side buffers without bound.
 */
export class FrameStream {
  readonly stream: Stream
  /** When the last frame was queued (epoch ms); drives keep-alives. */
  lastWriteAt = Date.now()
  private readonly maxFrameBytes: number
  private readonly reader: FrameReader
  private writes: Promise<void> = Promise.resolve()

  constructor (stream: Stream, init: FrameStreamInit = {}) {
    this.stream = stream
    this.maxFrameBytes = init.maxFrameBytes ?? MAX_FRAME_BYTES
    this.reader = new FrameReader(stream, {
      maxFrameBytes: this.maxFrameBytes,
      highWaterBytes: READ_HIGH_WATER_BYTES,
      lowWaterBytes: READ_LOW_WATER_BYTES
    })
  }

  /**
   * The next frame. Throws FrameTooLargeError, MalformedFrameError,
   * StreamCutError when the stream ends or is reset, or the signal's reason.
   */
  async read (options: ReadOptions): Promise<Frame> {
    try {
      return await this.reader.read(options.signal)
    } catch (err) {
      if (options.signal.aborted) throw options.signal.reason
      throw err
    }
  }

  /** Queues a frame; resolves once the stream accepted it (after a drain if needed). */
  async write (frame: Frame, options: AbortOptions = {}): Promise<void> {
    const bytes = encodeFrame(frame, this.maxFrameBytes)
    this.lastWriteAt = Date.now()
    const write = this.writes.then(async () => {
      options.signal?.throwIfAborted()
      if (!this.stream.send(bytes)) {
        await drained(this.stream, options.signal)
      }
    })
    this.writes = write.catch(() => {})
    return write
  }

  /** Closes our side gracefully once queued frames are sent; resets the stream if that stalls. */
  async close (): Promise<void> {
    try {
      await this.writes
      await this.stream.close({ signal: AbortSignal.timeout(GOODBYE_TIMEOUT_MS) })
    } catch (err: any) {
      this.stream.abort(err)
    }
  }

  /**
   * Ends a stream that went wrong: sends an `error` frame (best effort),
   * then lets the stream go (see release).
   */
  async fail (code: string, message: string): Promise<void> {
    try {
      await this.write({ type: 'error', code, message }, { signal: AbortSignal.timeout(GOODBYE_TIMEOUT_MS) })
    } catch {}
    await this.release(`stream failed (${code})`)
  }

  /**
   * Lets a stream go that will not be read again: closes our side once
   * queued frames are sent, discards whatever the remote still sends, and
   * resets the stream if the remote does not close its side soon.
   */
  async release (reason: string): Promise<void> {
    await this.close()
    if (this.stream.status !== 'open') return
    void this.stream.closeRead().catch(() => {})
    void delay(FAILED_STREAM_LINGER_MS, undefined, { ref: false }).then(() => {
      if (this.stream.status === 'open') this.stream.abort(new Error(`${reason}; the remote did not close the stream`))
    })
  }

  abort (err: Error): void {
    this.stream.abort(err)
  }
}

/**
 * Resolves on the stream's next 'drain' event. Not `stream.onDrain()`: in
 * @libp2p/utils 7.4.1 its promise is never renewed after the first drain,
 * so every later call resolves at once and back-pressure is lost (16 MiB
 * piled up in one write buffer in test/wire.test.ts).
 */
async function drained (stream: Stream, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
      if (err == null) resolve()
      else reject(err)
    }
    const onDrain = (): void => { done() }
    const onClose = (event: StreamCloseEvent): void => { done(event.error ?? new StreamCutError('the stream closed while waiting to send')) }
    const onAbort = (): void => { done(signal?.reason) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}
