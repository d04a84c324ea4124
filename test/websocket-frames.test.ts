/**
 * One WebSocket frame per write on a real connection: two libp2p nodes
 * (WebSocket, Noise, Yamux) talk through a TCP forwarder that parses the
 * WebSocket frames going each way. Every binary frame after the handshake
 * must hold whole Noise messages (a 2-byte big-endian length, then that many
 * bytes). As published, @libp2p/websockets sends a Noise message's length
 * and ciphertext as two frames (docs/upstream-websockets-frames.md): the
 * same check with `joinParts: false` shows the split, so the check can fail.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { webSocketTransport } from '../src/node/websocket-transport.js'
import type { Stream } from '@libp2p/interface'

const ECHO = '/clawmatrix-test/echo/1.0.0'

/** Payload sizes of the binary frames seen one way, with whether each holds whole Noise messages. */
interface Direction {
  frames: Array<{ bytes: number, wholeMessages: boolean }>
}

/** Forwards TCP to `target` and records the WebSocket frames each way once `recording` is set. */
class FrameRecorder {
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
          direction.frames.push({ bytes: frame.payload.byteLength, wholeMessages: wholeNoiseMessages(frame.payload) })
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
function wholeNoiseMessages (payload: Buffer): boolean {
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

async function node (joinParts: boolean, listen: boolean): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0/ws'] : [] },
    transports: [webSocketTransport({ joinParts })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false }
  })
}

/** Writes `message` and waits for it to come back whole. */
async function echo (stream: Stream, message: Uint8Array): Promise<void> {
  let received = 0
  const back = new Promise<void>((resolve, reject) => {
    const onMessage = (event: any): void => {
      received += event.data.byteLength
      if (received >= message.byteLength) {
        stream.removeEventListener('message', onMessage)
        resolve()
      }
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', () => { reject(new Error('the echo stream closed')) }, { once: true })
  })
  stream.send(message)
  await back
}

describe('WebSocket frames per Noise message', () => {
  const started: Libp2p[] = []
  const recorders: FrameRecorder[] = []
  afterEach(async () => {
    await Promise.all(started.splice(0).map(async n => { await n.stop() }))
    await Promise.all(recorders.splice(0).map(async r => { await r.close() }))
  })

  /** Connects a dialer to a listener through a recorder, then echoes small and large messages while recording. */
  async function traffic (joinParts: boolean): Promise<FrameRecorder> {
    const listener = await node(joinParts, true)
    const dialer = await node(joinParts, false)
    started.push(listener, dialer)
    await listener.handle(ECHO, stream => {
      stream.addEventListener('message', event => { stream.send(event.data) })
      stream.addEventListener('remoteCloseWrite', () => { void stream.close() })
    })
    const port = Number(listener.getMultiaddrs()[0]!.toString().match(/\/tcp\/(\d+)\//)![1])
    const recorder = new FrameRecorder(port)
    recorders.push(recorder)
    const forwarded = multiaddr(`/ip4/127.0.0.1/tcp/${await recorder.listen()}/ws/p2p/${listener.peerId.toString()}`)
    const stream = await dialer.dialProtocol(forwarded, ECHO, { signal: AbortSignal.timeout(10_000) })
    // The handshakes are behind; from here on every frame is Noise transport messages.
    await echo(stream, new Uint8Array(10).fill(1))
    recorder.recording = true
    for (let i = 0; i < 20; i++) await echo(stream, new Uint8Array(100).fill(i))
    // Larger than one Noise message (65,535 bytes): several messages in one write.
    await echo(stream, new Uint8Array(200_000).fill(7))
    recorder.recording = false
    await stream.close()
    return recorder
  }

  it('sends each Noise message as whole WebSocket frames, both ways', async () => {
    const recorder = await traffic(true)
    for (const direction of [recorder.toListener, recorder.toDialer]) {
      expect(direction.frames.length).toBeGreaterThanOrEqual(21)
      expect(direction.frames.filter(f => !f.wholeMessages)).toEqual([])
    }
    // The large write went out in frames of whole messages, none above one message.
    expect(Math.max(...recorder.toListener.frames.map(f => f.bytes))).toBe(2 + 65_535)
  }, 60_000)

  it('as published (joinParts: false), splits every message into its length and its ciphertext', async () => {
    const recorder = await traffic(false)
    for (const direction of [recorder.toListener, recorder.toDialer]) {
      // Each message: a frame of its 2-byte length, then one or more of its ciphertext
      // (a large one as Noise encrypted it: muxer header, data, authentication tag).
      const lengths = direction.frames.filter(f => f.bytes === 2)
      expect(lengths.length).toBeGreaterThanOrEqual(21)
      expect(direction.frames.length).toBeGreaterThanOrEqual(2 * lengths.length)
      expect(lengths.every(f => !f.wholeMessages)).toBe(true)
    }
  }, 60_000)
})
