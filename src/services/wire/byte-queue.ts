/**
 * Received bytes waiting to be parsed into frames: a list of chunks, so
 * appending never copies and only a taken frame is joined.
 */
export class ByteQueue {
  private chunks: Uint8Array[] = []
  private offset = 0
  length = 0

  push (chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return
    this.chunks.push(chunk)
    this.length += chunk.byteLength
  }

  /** The byte at `index` from the front, or undefined past the end. */
  at (index: number): number | undefined {
    let position = index + this.offset
    for (const chunk of this.chunks) {
      if (position < chunk.byteLength) return chunk[position]
      position -= chunk.byteLength
    }
    return undefined
  }

  /** Removes and returns `count` bytes from the front (count <= length). */
  take (count: number): Uint8Array {
    const out = new Uint8Array(count)
    let filled = 0
    while (filled < count) {
      const chunk = this.chunks[0]!
      const available = chunk.byteLength - this.offset
      const n = Math.min(available, count - filled)
      out.set(chunk.subarray(this.offset, this.offset + n), filled)
      filled += n
      if (n === available) {
        this.chunks.shift()
        this.offset = 0
      } else {
        this.offset += n
      }
    }
    this.length -= count
    return out
  }

  skip (count: number): void {
    this.take(count)
  }
}
