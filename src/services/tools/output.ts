import { OUTPUT_CHUNK_CHARS } from './constants.js'

export interface Truncation {
  /** toolProxy.maxOutputBytes of the executing node. */
  limitBytes: number
  /** Bytes sent before the cut (the marker not counted). */
  shownBytes: number
  /** Bytes the tool produced in all. */
  totalBytes: number
}

export type OutputSender = (channel: string, text: string) => Promise<void>

/**
 * Caps a tool's output at `limitBytes` (UTF-8) across all channels. Output
 * past the cap is counted, not sent; `finish` then appends a visible marker
 * to the channel that overflowed and reports the original size. Text is sent
 * in pieces of at most OUTPUT_CHUNK_CHARS so no frame grows with the cap.
 */
export class OutputLimiter {
  private shownBytes = 0
  private totalBytes = 0
  private overflowChannel?: string

  constructor (private readonly limitBytes: number, private readonly send: OutputSender, private readonly nodeId: string) {}

  async write (channel: string, text: string): Promise<void> {
    if (text === '') return
    const bytes = Buffer.byteLength(text)
    this.totalBytes += bytes
    if (this.overflowChannel != null) return
    const room = this.limitBytes - this.shownBytes
    if (bytes <= room) {
      this.shownBytes += bytes
      await this.sendChunked(channel, text)
      return
    }
    this.overflowChannel = channel
    const head = utf8Prefix(text, room)
    this.shownBytes += Buffer.byteLength(head)
    await this.sendChunked(channel, head)
  }

  /** Sends the truncation marker if output was cut, and says how much. */
  async finish (): Promise<Truncation | undefined> {
    if (this.overflowChannel == null) return undefined
    const truncation = { limitBytes: this.limitBytes, shownBytes: this.shownBytes, totalBytes: this.totalBytes }
    await this.send(this.overflowChannel, truncationMarker(truncation, this.nodeId))
    return truncation
  }

  private async sendChunked (channel: string, text: string): Promise<void> {
    for (const piece of chunks(text, OUTPUT_CHUNK_CHARS)) {
      await this.send(channel, piece)
    }
  }
}

export function truncationMarker ({ limitBytes, shownBytes, totalBytes }: Truncation, nodeId: string): string {
  return `\n[output truncated by clawmatrix on ${nodeId}: ${shownBytes} of ${totalBytes} bytes shown; toolProxy.maxOutputBytes is ${limitBytes}]\n`
}

/** The longest prefix of `text` that fits in `maxBytes` of UTF-8 without splitting a character. */
export function utf8Prefix (text: string, maxBytes: number): string {
  const bytes = Buffer.from(text)
  if (bytes.byteLength <= maxBytes) return text
  let end = Math.max(0, maxBytes)
  // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  return bytes.subarray(0, end).toString('utf8')
}

/** Splits text into pieces of at most `size` code units, never between the halves of a surrogate pair. */
export function * chunks (text: string, size: number): Generator<string> {
  let start = 0
  while (start < text.length) {
    let end = Math.min(start + size, text.length)
    const last = text.charCodeAt(end - 1)
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--
    yield text.slice(start, end)
    start = end
  }
}
