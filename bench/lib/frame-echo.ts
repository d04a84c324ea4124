/**
 * The baselines beside the work protocols. First a bench-only protocol that does
 * one request/response per new stream with the same framing helper
 * (FrameStream from dist/services/wire) but none of the protocols' logic:
 * no accept phase, schema check, run tracking, keep-alive or tool executor.
 * What it costs is libp2p's own floor (stream open with protocol
 * negotiation, yamux, noise, the path) plus length-prefixed JSON frames.
 *
 * Requests: `{"type":"echo","text":…}` is answered with the same frame;
 * `{"type":"bulk","bytes":N}` with N characters in `output` frames of
 * 16 384 characters (as the tool proxy streams output), then `{"type":"result"}`.
 *
 * Second, for bulk data without the framing: a protocol that answers a
 * byte count (ASCII decimal, then the caller closes its side) with that
 * many raw bytes in 64 KiB writes.
 */
import { importDist } from './dist.js'
import type { Swarm } from '../../src/node/swarm.js'
import type { PeerId, Stream } from '@libp2p/interface'

const { FrameStream } = await importDist<typeof import('../../src/services/wire/frame-stream.js')>('services/wire/frame-stream.js')
const { OUTPUT_CHUNK_CHARS } = await importDist<typeof import('../../src/services/tools/constants.js')>('services/tools/constants.js')

/** The tool proxy's output piece size, as the baseline sends it: for labels. */
export const OUTPUT_PIECE_KIB = OUTPUT_CHUNK_CHARS / 1024
export const FRAMES_PER_MIB = Math.ceil(1024 * 1024 / OUTPUT_CHUNK_CHARS)

export const FRAME_ECHO_PROTOCOL = '/clawmatrix-bench/frame-echo/1.0.0'
export const BYTES_PROTOCOL = '/clawmatrix-bench/bytes/1.0.0'

/** The most a bulk request may ask for: the baseline must not become a way to fill memory. */
const MAX_BULK_CHARS = 64 * 1024 * 1024
const REQUEST_TIMEOUT_MS = 10_000
const BYTES_CHUNK = 64 * 1024

/** Serves the echo protocol on `swarm`, over relayed connections too (as the work protocols do). */
export async function serveFrameEcho (swarm: Swarm): Promise<void> {
  await swarm.handle(FRAME_ECHO_PROTOCOL, async stream => {
    const frames = new FrameStream(stream)
    try {
      const request = await frames.read({ signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
      if (request.type === 'echo') {
        await frames.write(request)
      } else if (request.type === 'bulk' && Number.isSafeInteger(request.bytes) && (request.bytes as number) <= MAX_BULK_CHARS) {
        const piece = 'a'.repeat(OUTPUT_CHUNK_CHARS)
        for (let left = request.bytes as number; left > 0; left -= piece.length) {
          await frames.write({ type: 'output', channel: 'stdout', text: left >= piece.length ? piece : piece.slice(0, left) })
        }
        await frames.write({ type: 'result', status: 'ok' })
      } else {
        await frames.write({ type: 'error', code: 'bad-request', message: `unknown bench request ${request.type}` })
      }
      await frames.close()
    } catch (err: any) {
      frames.abort(err)
    }
  }, { runOnLimitedConnection: true })
}

/** Opens a stream, sends `text`, resolves when the same text came back; the stream is closed after. */
export async function frameEcho (swarm: Swarm, peer: PeerId, text: string, signal: AbortSignal): Promise<void> {
  const frames = new FrameStream(await swarm.dialProtocol(peer, FRAME_ECHO_PROTOCOL, { runOnLimitedConnection: true, signal }))
  try {
    await frames.write({ type: 'echo', text }, { signal })
    const reply = await frames.read({ signal })
    if (reply.text !== text) throw new Error(`the echo answered ${JSON.stringify(reply).slice(0, 200)}`)
    await frames.close()
  } catch (err: any) {
    frames.abort(err)
    throw err
  }
}

/** Asks the remote for `chars` characters in output frames; resolves with how many arrived before its result frame. */
export async function frameBulk (swarm: Swarm, peer: PeerId, chars: number, signal: AbortSignal): Promise<number> {
  const frames = new FrameStream(await swarm.dialProtocol(peer, FRAME_ECHO_PROTOCOL, { runOnLimitedConnection: true, signal }))
  try {
    await frames.write({ type: 'bulk', bytes: chars }, { signal })
    let received = 0
    while (true) {
      const frame = await frames.read({ signal })
      if (frame.type === 'result') break
      if (frame.type !== 'output' || typeof frame.text !== 'string') throw new Error(`unexpected bulk frame ${JSON.stringify(frame).slice(0, 200)}`)
      received += frame.text.length
    }
    await frames.close()
    return received
  } catch (err: any) {
    frames.abort(err)
    throw err
  }
}

/** Serves the raw bytes protocol on `swarm`, over relayed connections too. */
export async function serveBytes (swarm: Swarm): Promise<void> {
  await swarm.handle(BYTES_PROTOCOL, async stream => {
    try {
      const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
      let request = ''
      for await (const chunk of stream) {
        signal.throwIfAborted()
        request += new TextDecoder().decode(chunk.subarray())
        if (request.length > 20) throw new Error('bytes request too long')
      }
      const bytes = Number(request)
      if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_BULK_CHARS) throw new Error(`bad bytes request ${JSON.stringify(request)}`)
      const chunk = new Uint8Array(BYTES_CHUNK).fill(0x61)
      for (let left = bytes; left > 0; left -= chunk.byteLength) {
        if (!stream.send(left >= chunk.byteLength ? chunk : chunk.subarray(0, left))) await drained(stream)
      }
      await stream.close({ signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    } catch (err: any) {
      stream.abort(err)
    }
  }, { runOnLimitedConnection: true })
}

/** Asks the remote for `bytes` raw bytes; resolves with how many arrived before it closed the stream. */
export async function rawBulk (swarm: Swarm, peer: PeerId, bytes: number, signal: AbortSignal): Promise<number> {
  const stream = await swarm.dialProtocol(peer, BYTES_PROTOCOL, { runOnLimitedConnection: true, signal })
  const onAbort = (): void => { stream.abort(signal.reason) }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    stream.send(new TextEncoder().encode(String(bytes)))
    await stream.close({ signal })
    let received = 0
    for await (const chunk of stream) received += chunk.byteLength
    return received
  } catch (err: any) {
    stream.abort(err)
    throw err
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/** The stream's next 'drain' (not `stream.onDrain()`, which resolves at once after the first drain in @libp2p/utils 7.4.1). */
async function drained (stream: Stream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      if (err == null) resolve()
      else reject(err)
    }
    const onDrain = (): void => { done() }
    const onClose = (): void => { done(new Error('the stream closed while waiting to send')) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
  })
}
