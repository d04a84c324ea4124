/**
 * A TCP forwarder that parses the WebSocket frames it passes on, each way:
 * what a libp2p connection really puts on the wire, per frame.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'

/** Payload sizes of the binary frames seen one way, with whether each holds whole Noise messages. */
export interface Direction {
  frames: Array<{ bytes: number, wholeMessages: boolean, noiseMessages: number[] }>
}

/** Forwards TCP to `target` and records the WebSocket frames each way once `recording` is set. */
export class FrameRecorder {
  readonly toListener: Direction = { frames: [] }
  readonly toDialer: Direction = { frames: [] }
  recording = false
  private readonly server: Server
  private readonly sockets = new Set<Socket>()

  constructor (private readonly target: number) {
    this.server = createServer(client => {
      const upstream = tcpConnect(target, '127.0.0.1')
      for (const socket of [client, upstream]) {
        this.sockets.add(socket)
        socket.on('close', () => { this.sockets.delete(socket) })
        socket.on('error', () => {})
      }
      client.on('data', this.parser(this.toListener, chunk => upstream.write(chunk)))
      upstream.on('data', this.parser(this.toDialer, chunk => client.write(chunk)))
      client.on('end', () => upstream.end())
      upstream.on('end', () => client.end())
    })
  }

  async listen (): Promise<number> {
    await new Promise<void>(resolve => this.server.listen(0, '127.0.0.1', resolve))
    return (this.server.address() as { port: number }).port
  }

  async close (): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise(resolve => this.server.close(resolve))
  }

  /** Passes bytes on unchanged; after the HTTP upgrade, parses them into WebSocket frames. */
  private parser (direction: Direction, forward: (chunk: Buffer) => void): (chunk: Buffer) => void {
    let buffer = Buffer.alloc(0)
    let upgraded = false
    return chunk => {
      forward(chunk)
      buffer = Buffer.concat([buffer, chunk])
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end < 0) return
        upgraded = true
        buffer = buffer.subarray(end + 4)
      }
      while (true) {
        const frame = readFrame(buffer)
        if (frame == null) return
        buffer = buffer.subarray(frame.size)
        // Binary (2) or continuation (0): data. Control frames (ping, pong, close) are not.
        if (this.recording && (frame.opcode === 2 || frame.opcode === 0)) {
          direction.frames.push({ bytes: frame.payload.byteLength, wholeMessages: wholeNoiseMessages(frame.payload), noiseMessages: noiseMessageLengths(frame.payload) })
        }
      }
    }
  }
}

/** The WebSocket frame at the front of `buffer` (RFC 6455 5.2), unmasked, or undefined if incomplete. */
function readFrame (buffer: Buffer): { opcode: number, payload: Buffer, size: number } | undefined {
  if (buffer.byteLength < 2) return undefined
  const opcode = buffer[0]! & 0x0f
  const masked = (buffer[1]! & 0x80) !== 0
  let length = buffer[1]! & 0x7f
  let at = 2
  if (length === 126) {
    if (buffer.byteLength < 4) return undefined
    length = buffer.readUInt16BE(2)
    at = 4
  } else if (length === 127) {
    if (buffer.byteLength < 10) return undefined
    length = Number(buffer.readBigUInt64BE(2))
    at = 10
  }
  const mask = masked ? buffer.subarray(at, at + 4) : undefined
  if (masked) at += 4
  if (buffer.byteLength < at + length) return undefined
  const payload = Buffer.from(buffer.subarray(at, at + length))
  if (mask != null) for (let i = 0; i < payload.byteLength; i++) payload[i]! ^= mask[i % 4]!
  return { opcode, payload, size: at + length }
}

/** Whether the payload is exactly a sequence of Noise transport messages (2-byte length, then the bytes). */
export function wholeNoiseMessages (payload: Buffer): boolean {
  let at = 0
  while (at < payload.byteLength) {
    if (payload.byteLength - at < 2) return false
    const length = payload.readUInt16BE(at)
    // A Noise transport message holds at least its 16-byte authentication tag.
    if (length < 16) return false
    at += 2 + length
  }
  return at === payload.byteLength
}


/** The lengths of the Noise messages a frame holds whole (none if it does not hold whole messages). */
export function noiseMessageLengths (payload: Buffer): number[] {
  if (!wholeNoiseMessages(payload)) return []
  const lengths: number[] = []
  for (let at = 0; at < payload.byteLength; at += 2 + lengths[lengths.length - 1]!) lengths.push(payload.readUInt16BE(at))
  return lengths
}

/** A Noise message of a muxer frame without data (a yamux window update, ping or go-away): 12-byte header + 16-byte tag. */
export const HEADER_ONLY_MESSAGE_BYTES = 12 + 16
