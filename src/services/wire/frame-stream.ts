import { FAILED_STREAM_LINGER_MS, GOODBYE_TIMEOUT_MS, MAX_FRAME_BYTES, READ_HIGH_WATER_BYTES, READ_LOW_WATER_BYTES } from './constants.js'
import { encodeFrame, type Frame } from './frame.js'
import { FrameReader } from './frame-reader.js'
import { StreamCutError } from './errors.js'
import { concatBytes } from '../../node/bytes.js'
import { WakefulDeadline, withWakefulDeadline } from '../../node/wakeful-deadline.js'
import { mark } from './trace.js'
import type { AbortOptions, Stream, StreamCloseEvent } from '@libp2p/interface'

export interface FrameStreamInit {
  maxFrameBytes?: number
}

export interface WriteOptions extends AbortOptions {
  /**
   * The batch may wait for the I/O the loop has pending (`setImmediate`)
   * instead of leaving at the end of this turn's promise jobs: for a frame
   * that travels best with what that I/O brings, like an answer's head with
   * its first chunk (whose writer then calls flush()). Frames written later
   * in the turn join the same batch.
   */
  afterPendingIo?: boolean
}

export interface ReadOptions {
  /** Every read is bounded: pass a deadline or the operation's signal. */
  signal: AbortSignal
}

/**
 * Frames written in one turn of the event loop are sent as one message: one
 * muxer frame, one Noise message, one WebSocket frame and one syscall for,
 * say, every SSE event an upstream read delivered. The batch goes out from
 * `process.nextTick`, once the promise jobs queued with the writes ran (a
 * burst of writes, however chained, ends up in one batch), or at once when
 * it holds FLUSH_BYTES. Not `setImmediate`: that waited for the rest of the
 * loop's I/O callbacks, and a request's first frame sat behind them.
 */
export const FLUSH_BYTES = 64 * 1024

/**
 * Frames over one libp2p stream. Reads are bounded by an AbortSignal and
 * size-checked, and pause the stream while the consumer is behind; writes
 * are queued in order, coalesced per turn of the event loop (FLUSH_BYTES),
 * and wait for the stream to drain once `send()` reported back-pressure, so
 * neither side buffers more than a batch without bound.
 */
export class FrameStream {
  readonly stream: Stream
  /** When the last frame was queued (epoch ms); drives keep-alives. */
  lastWriteAt = Date.now()
  private readonly maxFrameBytes: number
  private readonly reader: FrameReader
  private writes: Promise<void> = Promise.resolve()
  /** Encoded frames waiting for the end of this turn of the event loop. */
  private batch: Uint8Array[] = []
  private batchBytes = 0
  private flushScheduled = false
  /** Set while the stream reported back-pressure: later frames wait for its drain. */
  private draining?: Promise<void>
  /** A send that failed after its write had resolved: the next write or close throws it. */
  private failure?: Error

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

  /**
   * The next frame if one is already buffered whole, without waiting;
   * undefined otherwise. Lets a reader take what one message brought at once.
   */
  readBuffered (): Frame | undefined {
    return this.reader.readBuffered()
  }

  /**
   * Queues a frame. Resolves once it joined the current batch, which is at
   * once unless the stream is still draining an earlier one; a send that
   * fails later is thrown by the next write or close.
   */
  async write (frame: Frame, options: WriteOptions = {}): Promise<void> {
    const bytes = encodeFrame(frame, this.maxFrameBytes)
    this.lastWriteAt = Date.now()
    const write = this.writes.then(async () => {
      options.signal?.throwIfAborted()
      if (this.draining != null) await abortable(this.draining, options.signal)
      if (this.failure != null) throw this.failure
      this.batch.push(bytes)
      this.batchBytes += bytes.byteLength
      if (this.batchBytes >= FLUSH_BYTES) {
        this.flush()
      } else if (!this.flushScheduled) {
        this.flushScheduled = true
        if (options.afterPendingIo === true) setImmediate(this.flush)
        else process.nextTick(this.flush)
      }
    })
    this.writes = write.catch(() => {})
    return write
  }

  /**
   * Sends the batch as one message now, without waiting for the end of the
   * turn: for a frame someone waits on (a request, an answer's first chunk)
   * while later work of the same turn would hold it back. Back-pressure
   * holds the next write until the stream drains.
   */
  readonly flush = (): void => {
    // A scheduled flush finding its batch sent already (FLUSH_BYTES, close) does nothing.
    this.flushScheduled = false
    if (this.batch.length === 0) return
    const bytes = this.batch.length === 1 ? this.batch[0]! : concatBytes(this.batch, this.batchBytes)
    this.batch = []
    this.batchBytes = 0
    mark('frames sent')
    try {
      if (!this.stream.send(bytes)) {
        this.draining = drained(this.stream).then(
          () => { this.draining = undefined },
          (err: Error) => { this.failure ??= err; this.draining = undefined }
        )
      }
    } catch (err: any) {
      this.failure ??= err
    }
  }

  /** Closes our side gracefully once queued frames are sent; resets the stream if that stalls. */
  async close (): Promise<void> {
    try {
      await this.writes
      this.flush()
      if (this.failure != null) throw this.failure
      await withWakefulDeadline(GOODBYE_TIMEOUT_MS, async signal => { await this.stream.close({ signal }) })
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
      await withWakefulDeadline(GOODBYE_TIMEOUT_MS, async signal => { await this.write({ type: 'error', code, message }, { signal }) })
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
    // Wakeful: the remote's close may be what a blocked process has not read yet.
    const linger = new WakefulDeadline(FAILED_STREAM_LINGER_MS)
    const closed = (): void => { linger.clear() }
    this.stream.addEventListener('close', closed, { once: true })
    linger.signal.addEventListener('abort', () => {
      this.stream.removeEventListener('close', closed)
      if (this.stream.status === 'open') this.stream.abort(new Error(`${reason}; the remote did not close the stream`))
    }, { once: true })
  }

  abort (err: Error): void {
    this.batch = []
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

/** `promise`, or the signal's reason once it aborts first. */
async function abortable (promise: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (signal == null) return promise
  signal.throwIfAborted()
  let onAbort!: () => void
  try {
    await Promise.race([promise, new Promise<never>((_resolve, reject) => {
      onAbort = () => { reject(signal.reason) }
      signal.addEventListener('abort', onAbort, { once: true })
    })])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

