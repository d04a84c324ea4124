import { FrameTooLargeError, MalformedFrameError, StreamCutError } from './errors.js'
import { ByteQueue } from './byte-queue.js'
import { decodeFrame, type Frame } from './frame.js'
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'

export interface FrameReaderInit {
  maxFrameBytes: number
  /** Pause the stream when this much is buffered and a whole frame waits to be read. */
  highWaterBytes: number
  /** Resume below this. */
  lowWaterBytes: number
}

/** Longest varint prefix accepted: enough for any length a JS number holds. */
const MAX_PREFIX_BYTES = 9

/**
 * Parses length-prefixed frames off a libp2p 3 stream with back-pressure
 * that reaches the sender: in libp2p 3 reading does not slow the remote
 * (yamux grants window as bytes arrive), so the reader pauses the stream
 * while the consumer is behind and resumes once it caught up. It never
 * pauses unless a whole frame is buffered, so a large frame cannot stall.
 */
export class FrameReader {
  private readonly queue = new ByteQueue()
  private ended = false
  private endError?: Error
  private wake?: PromiseWithResolvers<void>
  /** Length of the frame at the front once its prefix is decoded. */
  private next?: { prefixBytes: number, length: number }

  constructor (private readonly stream: Stream, private readonly init: FrameReaderInit) {
    stream.addEventListener('message', this.onMessage)
    stream.addEventListener('end', this.onEnd)
    stream.addEventListener('close', this.onClose)
    if (stream.readableEnded) this.ended = true
  }

  /** The next frame; waits until one arrives, the stream ends or `signal` aborts. */
  async read (signal: AbortSignal): Promise<Frame> {
    while (true) {
      signal.throwIfAborted()
      const payload = this.takeFrame()
      if (payload != null) {
        this.maybeResume()
        return decodeFrame(payload)
      }
      if (this.ended) {
        const detail = this.endError?.message ?? (this.queue.length > 0 ? `${this.queue.length} bytes of an incomplete frame left` : 'closed')
        throw new StreamCutError(`the stream ended before its final frame (${detail})`, { cause: this.endError })
      }
      this.wake = Promise.withResolvers()
      const onAbort = (): void => { this.wake?.resolve() }
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        await this.wake.promise
      } finally {
        signal.removeEventListener('abort', onAbort)
      }
    }
  }

  /** The next frame if one is buffered whole; undefined otherwise. Throws like read() on a bad frame. */
  readBuffered (): Frame | undefined {
    const payload = this.takeFrame()
    if (payload == null) return undefined
    this.maybeResume()
    return decodeFrame(payload)
  }

  private readonly onMessage = (event: StreamMessageEvent): void => {
    const data = event.data
    this.queue.push(data instanceof Uint8Array ? data : data.subarray())
    try {
      if (this.queue.length >= this.init.highWaterBytes && this.stream.readStatus === 'readable' && this.frameReady()) {
        this.stream.pause()
      }
    } catch {
      // A bad length prefix: the next read() throws it to the consumer.
    }
    this.wake?.resolve()
  }

  private readonly onEnd = (): void => {
    this.ended = true
    this.wake?.resolve()
  }

  private readonly onClose = (event: StreamCloseEvent): void => {
    this.endError = event.error
    this.ended = true
    this.stream.removeEventListener('message', this.onMessage)
    this.stream.removeEventListener('end', this.onEnd)
    this.stream.removeEventListener('close', this.onClose)
    this.wake?.resolve()
  }

  /** Whether a whole frame is buffered. Throws on a bad or oversized prefix. */
  private frameReady (): boolean {
    const next = this.next ?? this.decodePrefix()
    return next != null && this.queue.length >= next.prefixBytes + next.length
  }

  private takeFrame (): Uint8Array | undefined {
    if (!this.frameReady()) return undefined
    const { prefixBytes, length } = this.next!
    this.next = undefined
    this.queue.skip(prefixBytes)
    return this.queue.take(length)
  }

  private decodePrefix (): { prefixBytes: number, length: number } | undefined {
    let length = 0
    for (let i = 0; i < MAX_PREFIX_BYTES; i++) {
      const byte = this.queue.at(i)
      if (byte == null) return undefined
      length += (byte & 0x7f) * 2 ** (7 * i)
      if (length > this.init.maxFrameBytes) {
        throw new FrameTooLargeError(`frame length prefix is above the limit of ${this.init.maxFrameBytes} bytes`)
      }
      if ((byte & 0x80) === 0) {
        this.next = { prefixBytes: i + 1, length }
        return this.next
      }
    }
    throw new MalformedFrameError('frame length prefix is not a valid varint')
  }

  private maybeResume (): void {
    if (this.stream.readStatus !== 'paused') return
    if (this.queue.length < this.init.lowWaterBytes || !this.frameReady()) {
      this.stream.resume()
    }
  }
}
