/** Joins byte arrays of a known total length into one (one copy, no intermediate buffers). */
export function concatBytes (parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.byteLength
  }
  return out
}
