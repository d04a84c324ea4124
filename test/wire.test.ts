import { peerIdFromString } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FrameTooLargeError, IdleTimeoutError, MalformedFrameError, NoCandidateAcceptedError, RefusedError, RemoteError, StreamCutError } from '../src/services/wire/errors.js'
import { firstAccepting } from '../src/services/wire/failover.js'
import { encodeFrame, encodeVarint, type Frame } from '../src/services/wire/frame.js'
import { FrameStream } from '../src/services/wire/frame-stream.js'
import { serveInbound } from '../src/services/wire/inbound.js'
import { KeepAlive } from '../src/services/wire/keep-alive.js'
import { readUntil } from '../src/services/wire/read-frames.js'
import { connect, startSwarm } from './fixtures/proto-harness.js'
import { waitFor } from './helpers/wait.js'
import type { Swarm } from '../src/node/swarm.js'
import type { Stream } from '@libp2p/interface'
import { logger } from '@libp2p/logger'

const RAW = '/clawmatrix-test/raw/1.0.0'
const SERVED = '/clawmatrix-test/served/1.0.0'
const log = logger('clawmatrix:test')
const encoder = new TextEncoder()

/** Bytes of a length-prefixed payload, bypassing the frame encoder's checks. */
function rawFrame (payload: string | Uint8Array): Uint8Array {
  const body = typeof payload === 'string' ? encoder.encode(payload) : payload
  const prefix = encodeVarint(body.byteLength)
  const bytes = new Uint8Array(prefix.byteLength + body.byteLength)
  bytes.set(prefix)
  bytes.set(body, prefix.byteLength)
  return bytes
}

const signal = (): AbortSignal => AbortSignal.timeout(10_000)

describe('frames over real libp2p streams', () => {
  let a: Swarm
  let b: Swarm
  /** Streams B received on RAW, in arrival order. */
  const inbound: Stream[] = []
  let served = 0

  beforeAll(async () => {
    a = await startSwarm('wire-a')
    b = await startSwarm('wire-b')
    await b.handle(RAW, stream => { inbound.push(stream) }, { runOnLimitedConnection: true })
    // Echoes the request's type back in a final `result` frame, through the real inbound path.
    await b.handle(SERVED, async (stream, connection) => {
      await serveInbound(stream, connection, { maxFrameBytes: 1024, requestTimeoutMs: 5_000, log }, async (frames, request) => {
        served++
        await frames.write({ type: 'result', echo: request.type })
        await frames.close()
      })
    }, { runOnLimitedConnection: true })
    await connect(a, b)
  })

  afterAll(async () => {
    await a?.stop()
    await b?.stop()
  })

  async function rawPair (): Promise<{ out: Stream, in: Stream }> {
    const before = inbound.length
    const out = await a.dialProtocol(b.peerId, RAW, { signal: signal() })
    out.send(rawFrame('{"type":"hello"}'))
    await waitFor('the inbound stream', () => inbound.length > before)
    return { out, in: inbound[inbound.length - 1]! }
  }

  it('carries frames in order, both ways', async () => {
    const { out, in: inStream } = await rawPair()
    const caller = new FrameStream(out)
    const receiver = new FrameStream(inStream)
    expect(await receiver.read({ signal: signal() })).toEqual({ type: 'hello' })
    for (let i = 0; i < 5; i++) await receiver.write({ type: 'progress', i, text: 'é🦀' })
    await receiver.write({ type: 'result', ok: true })
    const seen: Frame[] = []
    const final = await readUntil(caller, f => f.type === 'result', { signal: signal(), idleTimeoutMs: 5_000, remote: 'b', onFrame: f => seen.push(f) })
    expect(seen.map(f => f.i)).toEqual([0, 1, 2, 3, 4])
    expect(seen[4]?.text).toBe('é🦀')
    expect(final).toEqual({ type: 'result', ok: true })
  })

  it('sends the frames written in one turn of the event loop as one message, and later ones in the next', async () => {
    const { out, in: inStream } = await rawPair()
    const caller = new FrameStream(out)
    const receiver = new FrameStream(inStream)
    expect(await receiver.read({ signal: signal() })).toEqual({ type: 'hello' })
    const messages: number[] = []
    out.addEventListener('message', event => { messages.push(event.data.byteLength) })
    await Promise.all(Array.from({ length: 20 }, async (_, i) => receiver.write({ type: 'chunk', i })))
    await receiver.write({ type: 'end' })
    const got: Frame[] = []
    while (got.at(-1)?.type !== 'end') got.push(await caller.read({ signal: signal() }))
    expect(got.map(f => f.i)).toEqual([...Array.from({ length: 20 }, (_, i) => i), undefined])
    // One message for all 21 frames; without coalescing each frame is its own muxer frame and message.
    expect(messages).toHaveLength(1)
    // Everything that arrived with it can be taken without waiting.
    await receiver.write({ type: 'a' })
    await receiver.write({ type: 'b' })
    expect(await caller.read({ signal: signal() })).toEqual({ type: 'a' })
    expect(caller.readBuffered()).toEqual({ type: 'b' })
    expect(caller.readBuffered()).toBeUndefined()
    expect(messages).toHaveLength(2)
    // A write in a later turn is a later message: nothing waits for more than one turn.
    await receiver.write({ type: 'c' })
    await new Promise(resolve => setImmediate(resolve))
    await receiver.write({ type: 'd' })
    await caller.read({ signal: signal() })
    await caller.read({ signal: signal() })
    expect(messages).toHaveLength(4)
  })

  it('sends a batch once the writes of this turn ran, before the callbacks waiting for the end of the loop', async () => {
    const { out, in: inStream } = await rawPair()
    const caller = new FrameStream(out)
    const receiver = new FrameStream(inStream)
    await receiver.read({ signal: signal() })
    const order: string[] = []
    const send = inStream.send.bind(inStream)
    inStream.send = data => {
      order.push('sent')
      return send(data)
    }
    // Queued before the write: a batch that waited for setImmediate went out after it (a request's first frame behind the loop's other I/O).
    setImmediate(() => { order.push('end of the loop') })
    await receiver.write({ type: 'first' })
    await receiver.write({ type: 'second' })
    await new Promise(resolve => setImmediate(resolve))
    expect(order).toEqual(['sent', 'end of the loop'])
    expect(await caller.read({ signal: signal() })).toEqual({ type: 'first' })
    expect(caller.readBuffered()).toEqual({ type: 'second' })
  })

  it('reports a send that failed after its write resolved at the next write and at close', async () => {
    const { out, in: inStream } = await rawPair()
    const receiver = new FrameStream(inStream)
    await receiver.read({ signal: signal() })
    await receiver.write({ type: 'lost' })
    // The batch goes out at the end of this turn, into a stream that was closed for writing.
    await inStream.close()
    await new Promise(resolve => setImmediate(resolve))
    await expect(receiver.write({ type: 'next' })).rejects.toThrow()
    out.abort(new Error('done'))
  })

  it('rejects a malformed frame: not JSON, not an object, no type, not UTF-8', async () => {
    for (const bad of ['not json', '[1,2]', '{"no":"type"}', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])]) {
      const { out, in: inStream } = await rawPair()
      const receiver = new FrameStream(inStream)
      await receiver.read({ signal: signal() })
      out.send(rawFrame(bad))
      await expect(receiver.read({ signal: signal() })).rejects.toBeInstanceOf(MalformedFrameError)
      out.abort(new Error('done'))
    }
  })

  it('rejects a frame whose length prefix is above the limit before its body arrives', async () => {
    const { out, in: inStream } = await rawPair()
    const receiver = new FrameStream(inStream, { maxFrameBytes: 1024 })
    await receiver.read({ signal: signal() })
    out.send(encodeVarint(5 * 1024 * 1024)) // only the prefix: the body never comes
    const err = await receiver.read({ signal: signal() }).catch(e => e)
    expect(err).toBeInstanceOf(FrameTooLargeError)
    expect(err.message).toContain('1024')
  })

  it('refuses to send a frame above the limit', async () => {
    expect(() => encodeFrame({ type: 'x', text: 'y'.repeat(2048) }, 1024)).toThrow(FrameTooLargeError)
  })

  it('tells a stream that ended before its final frame from a finished one', async () => {
    const closed = await rawPair()
    const reader = new FrameStream(closed.out)
    await closed.in.close() // clean end, no final frame
    await expect(reader.read({ signal: signal() })).rejects.toBeInstanceOf(StreamCutError)

    const reset = await rawPair()
    const resetReader = new FrameStream(reset.out)
    reset.in.abort(new Error('remote gave up'))
    await expect(resetReader.read({ signal: signal() })).rejects.toBeInstanceOf(StreamCutError)
  })

  it('answers a malformed or oversized request with an error frame and keeps serving', async () => {
    for (const [bytes, code] of [[rawFrame('{oops'), 'bad-frame'], [encodeVarint(4096), 'frame-too-large']] as const) {
      const stream = await a.dialProtocol(b.peerId, SERVED, { signal: signal() })
      const frames = new FrameStream(stream)
      stream.send(bytes)
      const err = await readUntil(frames, () => false, { signal: signal(), idleTimeoutMs: 5_000, remote: 'b' }).catch(e => e)
      expect(err).toBeInstanceOf(RemoteError)
      expect(err.code).toBe(code)
      // The error frame was the last thing on that stream.
      await expect(frames.read({ signal: signal() })).rejects.toBeInstanceOf(StreamCutError)
    }
    const stream = await a.dialProtocol(b.peerId, SERVED, { signal: signal() })
    const frames = new FrameStream(stream)
    await frames.write({ type: 'ping' })
    expect(await frames.read({ signal: signal() })).toEqual({ type: 'result', echo: 'ping' })
    expect(served).toBe(1)
  })

  it('keeps a silent exchange alive with keep-alives, and times out without them', async () => {
    const { out, in: inStream } = await rawPair()
    const caller = new FrameStream(out)
    const receiver = new FrameStream(inStream)
    await receiver.read({ signal: signal() })
    const keepAlive = new KeepAlive(receiver, 20)
    keepAlive.start()
    let keepAlives = 0
    const reading = readUntil(caller, f => {
      if (f.type === 'keepalive') keepAlives++
      return f.type === 'result'
    }, { signal: signal(), idleTimeoutMs: 1_000, remote: 'b' })
    // The work "takes" ten keep-alive intervals: far beyond what one idle window would allow without them.
    await waitFor('ten keep-alives', () => keepAlives >= 10)
    keepAlive.stop()
    await receiver.write({ type: 'result' })
    await expect(reading).resolves.toEqual({ type: 'result' })

    const silent = await rawPair()
    const silentCaller = new FrameStream(silent.out)
    await expect(readUntil(silentCaller, f => f.type === 'result', { signal: signal(), idleTimeoutMs: 200, remote: 'b' }))
      .rejects.toBeInstanceOf(IdleTimeoutError)
  })

  it('applies back-pressure end to end: a paused reader stops the writer, and nothing is lost', async () => {
    const { out, in: inStream } = await rawPair()
    const writer = new FrameStream(out)
    const reader = new FrameStream(inStream)
    await reader.read({ signal: signal() })
    const count = 64
    const text = 'x'.repeat(256 * 1024)
    let sent = 0
    const writing = (async () => {
      for (let i = 0; i < count; i++) {
        await writer.write({ type: 'chunk', i, text }, { signal: AbortSignal.timeout(30_000) })
        sent++
      }
    })()
    // 16 MiB cannot fit in the window and buffers: the reader must pause and the writer must wait.
    await waitFor('the reader to pause and the writer to block', () => inStream.readStatus === 'paused' && (out as any).writableNeedsDrain === true)
    expect(sent).toBeLessThan(count)
    for (let i = 0; i < count; i++) {
      const frame = await reader.read({ signal: AbortSignal.timeout(30_000) })
      expect(frame.i).toBe(i)
      expect(frame.text).toBe(text)
    }
    await writing
    expect(inStream.status).toBe('open')
  })
})

describe('firstAccepting', () => {
  const peers = [
    '12D3KooWGRUVh1GJ9cHNEXAfxsQGrhvYdA7m4LdyPNmSHkW8ZA8d',
    '12D3KooWCfhQ8GHmnmGyWMaL8GWx1Lhw2WhH86n2TbrfWjkBPSqR',
    '12D3KooWKW1GMeMX1VHyuKmtbs5ESRvxjD1EsVQ6CyrZqkTY2HRN'
  ].map(id => peerIdFromString(id))

  it('moves past refusals and unreachable peers to the first that accepts', async () => {
    const tried: string[] = []
    const result = await firstAccepting(peers, async peer => {
      tried.push(peer.toString())
      if (peer.equals(peers[0])) throw new RefusedError('busy', 'busy')
      if (peer.equals(peers[1])) throw new Error('dial failed')
      return 'accepted'
    })
    expect(result).toBe('accepted')
    expect(tried).toEqual(peers.map(String))
  })

  it('lists every failure when no candidate accepts, and rethrows a lone candidate\'s own error', async () => {
    const err = await firstAccepting(peers, async () => { throw new RefusedError('no-such-agent', 'no agent') }).catch(e => e)
    expect(err).toBeInstanceOf(NoCandidateAcceptedError)
    expect(err.failures).toHaveLength(3)
    const single = await firstAccepting(peers.slice(0, 1), async () => { throw new RefusedError('busy', 'too busy') }).catch(e => e)
    expect(single).toBeInstanceOf(RefusedError)
    await expect(firstAccepting([], async () => 1)).rejects.toThrow('no candidate peers')
  })
})
