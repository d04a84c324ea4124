/**
 * What one write costs on the wire under a stream, on a real connection: two
 * libp2p nodes (WebSocket, Noise, Yamux, as the swarm builds them) talk
 * through a TCP forwarder that parses the WebSocket frames going each way
 * (./helpers/websocket-frames.ts).
 *
 * - One WebSocket frame per Noise message: every binary frame after the
 *   handshake holds whole Noise messages (a 2-byte big-endian length, then
 *   that many bytes). As published, @libp2p/websockets sends a message's
 *   length and ciphertext as frames of their own
 *   (docs/upstream-websockets-frames.md); `joinParts: false` shows the split.
 * - No window update per data frame: small messages echoed back and forth
 *   travel without a yamux window update for each
 *   (docs/upstream-yamux-window-updates.md); `halfWindowUpdates: false`
 *   shows one per message. A transfer many windows long still completes.
 */
import { noise } from '@libp2p/noise'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { webSocketTransport } from '../src/node/websocket-transport.js'
import { yamuxMuxer } from '../src/node/yamux-muxer.js'
import { FrameRecorder, HEADER_ONLY_MESSAGE_BYTES, type Direction } from './helpers/websocket-frames.js'
import { echoOver } from './helpers/stream-echo.js'
import type { Stream } from '@libp2p/interface'

const ECHO = '/clawmatrix-test/echo/1.0.0'

interface Fixes {
  joinParts: boolean
  halfWindowUpdates: boolean
}

async function node (fixes: Fixes, listen: boolean): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0/ws'] : [] },
    transports: [webSocketTransport({ joinParts: fixes.joinParts })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamuxMuxer({ halfWindowUpdates: fixes.halfWindowUpdates })],
    connectionMonitor: { enabled: false }
  })
}

/** Writes `message` and waits for it to come back whole. */
async function echo (stream: Stream, message: Uint8Array): Promise<void> {
  await echoOver(stream, message)
}

/** The frames seen each way. */
interface Seen {
  toListener: Direction
  toDialer: Direction
}

/** Noise messages in these frames that carry a muxer header and no data: window updates here. */
function headerOnly (direction: Direction): number {
  return direction.frames.flatMap(f => f.noiseMessages).filter(bytes => bytes === HEADER_ONLY_MESSAGE_BYTES).length
}

describe('one write on the wire', () => {
  const started: Libp2p[] = []
  const recorders: FrameRecorder[] = []
  afterEach(async () => {
    await Promise.all(started.splice(0).map(async n => { await n.stop() }))
    await Promise.all(recorders.splice(0).map(async r => { await r.close() }))
  })

  /**
   * Connects a dialer to a listener through a recorder, then echoes 20 small
   * messages and then `large` while recording: `small` and `all` are the
   * frames of the small ones alone and of everything.
   */
  async function traffic (fixes: Fixes, large = 200_000): Promise<{ small: Seen, all: Seen }> {
    const listener = await node(fixes, true)
    const dialer = await node(fixes, false)
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
    const small = snapshot(recorder)
    // Larger than one Noise message (65,535 bytes): several messages in one write.
    await echo(stream, new Uint8Array(large).fill(7))
    recorder.recording = false
    await stream.close()
    return { small, all: recorder }
  }

  function snapshot (recorder: FrameRecorder): Seen {
    return { toListener: { frames: [...recorder.toListener.frames] }, toDialer: { frames: [...recorder.toDialer.frames] } }
  }

  it('sends each Noise message as whole WebSocket frames, both ways', async () => {
    const { all: recorder } = await traffic({ joinParts: true, halfWindowUpdates: true })
    for (const direction of [recorder.toListener, recorder.toDialer]) {
      expect(direction.frames.length).toBeGreaterThanOrEqual(21)
      expect(direction.frames.filter(f => !f.wholeMessages)).toEqual([])
    }
    // The large write went out in frames of whole messages, none above one message.
    expect(Math.max(...recorder.toListener.frames.map(f => f.bytes))).toBe(2 + 65_535)
  }, 60_000)

  it('as published (joinParts: false), splits every message into its length and its ciphertext', async () => {
    const { all: recorder } = await traffic({ joinParts: false, halfWindowUpdates: true })
    for (const direction of [recorder.toListener, recorder.toDialer]) {
      // Each message: a frame of its 2-byte length, then one or more of its ciphertext
      // (a large one as Noise encrypted it: muxer header, data, authentication tag).
      const lengths = direction.frames.filter(f => f.bytes === 2)
      expect(lengths.length).toBeGreaterThanOrEqual(21)
      expect(direction.frames.length).toBeGreaterThanOrEqual(2 * lengths.length)
      expect(lengths.every(f => !f.wholeMessages)).toBe(true)
    }
  }, 60_000)

  it('sends no window update per data frame, and still refills the window of a long transfer', async () => {
    // 4 MB each way: 16 initial windows, so it completes only if updates still flow.
    const { small, all } = await traffic({ joinParts: true, halfWindowUpdates: true }, 4_000_000)
    expect(small.toListener.frames.length).toBeGreaterThanOrEqual(20)
    expect(headerOnly(small.toListener)).toBe(0)
    expect(headerOnly(small.toDialer)).toBe(0)
    expect(headerOnly(all.toListener) + headerOnly(all.toDialer)).toBeGreaterThan(0)
  }, 60_000)

  it('as published (halfWindowUpdates: false), answers every data frame with a window update', async () => {
    const { small } = await traffic({ joinParts: true, halfWindowUpdates: false })
    // The dialer's update for each echo, the listener's for each message it echoes.
    expect(headerOnly(small.toListener)).toBeGreaterThanOrEqual(19)
    expect(headerOnly(small.toDialer)).toBeGreaterThanOrEqual(19)
  }, 60_000)
})
