import { FrameTooLargeError, MalformedFrameError } from './errors.js'

/**
 * One message on a clawmatrix stream: a JSON object with a string `type`.
 * On the wire it is the UTF-8 JSON text prefixed by its length as an
 * unsigned varint (the libp2p length-prefix convention).
 */
export interface Frame {
  type: string
  [field: string]: unknown
}

/** Sent by a receiver while it works, so no idle timeout on the path fires. */
export interface KeepAliveFrame extends Frame { type: 'keepalive' }

/** Ends a stream that failed as a whole (bad frame, internal error). Always final. */
export interface ErrorFrame extends Frame {
  type: 'error'
  code: string
  message: string
}

/** Sent by a caller to stop the remote work it asked for. */
export interface CancelFrame extends Frame { type: 'cancel' }

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The frame's bytes including its length prefix. Throws FrameTooLargeError above `maxFrameBytes`. */
export function encodeFrame (frame: Frame, maxFrameBytes: number): Uint8Array {
  const payload = encoder.encode(JSON.stringify(frame))
  if (payload.byteLength > maxFrameBytes) {
    throw new FrameTooLargeError(`a "${frame.type}" frame of ${payload.byteLength} bytes is above the limit of ${maxFrameBytes} bytes`)
  }
  const prefix = encodeVarint(payload.byteLength)
  const bytes = new Uint8Array(prefix.byteLength + payload.byteLength)
  bytes.set(prefix, 0)
  bytes.set(payload, prefix.byteLength)
  return bytes
}

/** Parses a frame payload (without its length prefix). Throws MalformedFrameError. */
export function decodeFrame (payload: Uint8Array): Frame {
  let text: string
  try {
    text = decoder.decode(payload)
  } catch {
    throw new MalformedFrameError('frame is not valid UTF-8')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err: any) {
    throw new MalformedFrameError(`frame is not valid JSON (${err.message})`)
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value)) {
    throw new MalformedFrameError(`frame must be a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'null' : typeof value}`)
  }
  const type = (value as Record<string, unknown>).type
  if (typeof type !== 'string' || type === '') {
    throw new MalformedFrameError('frame has no "type" string')
  }
  return value as Frame
}

/** Unsigned LEB128, as used by libp2p length prefixes. */
export function encodeVarint (value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`cannot encode ${value} as an unsigned varint`)
  const bytes: number[] = []
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80)
    value = Math.floor(value / 0x80)
  }
  bytes.push(value)
  return Uint8Array.from(bytes)
}
