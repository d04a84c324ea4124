/**
 * The two stream protocols the cluster benches drive between nodes: a bulk
 * sink (throughput) and a line echo (the relay soak). Both are registered
 * with `runOnLimitedConnection: true`, so they also run over relayed
 * connections, as clawmatrix's own protocols do.
 */
import { randomUUID } from 'node:crypto'
import type { Connection, Stream } from '@libp2p/interface'
import type { Swarm } from '../../src/node/swarm.js'

export const SINK_PROTOCOL = '/clawmatrix-bench/sink/1.0.0'
export const ECHO_PROTOCOL = '/clawmatrix-bench/echo/1.0.0'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Counts every byte until the sender closes its side, then answers the count and closes. */
export async function serveSink (swarm: Swarm): Promise<void> {
  await swarm.handle(SINK_PROTOCOL, async stream => {
    let received = 0
    for await (const chunk of stream) received += chunk.byteLength
    stream.send(encoder.encode(String(received)))
    await stream.close()
  }, { runOnLimitedConnection: true })
}

/**
 * Writes `bytes` on a new sink stream of `connection`, `chunkBytes` at a
 * time, waiting for the stream to drain whenever it asks to, and resolves
 * with the milliseconds from the first write until the sink's count
 * arrived (so every byte has reached the other node).
 */
export async function sendBulk (connection: Connection, bytes: number, chunkBytes: number, signal: AbortSignal): Promise<number> {
  const stream = await connection.newStream(SINK_PROTOCOL, { runOnLimitedConnection: true, signal })
  const chunk = new Uint8Array(chunkBytes).fill(0x5a)
  const start = performance.now()
  try {
    for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
      const last = bytes - sent < chunk.byteLength ? chunk.subarray(0, bytes - sent) : chunk
      if (!stream.send(last)) await stream.onDrain({ signal })
    }
    await stream.close({ signal })
    let reply = ''
    for await (const part of stream) reply += decoder.decode(part.subarray())
    if (Number(reply) !== bytes) throw new Error(`the sink counted ${reply || 'nothing'} of ${bytes} bytes`)
    return performance.now() - start
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

/**
 * A line protocol both ends speak: "echo <token>" asks the other end to send
 * "<token>" back; any other line answers a round trip. Either end can start
 * a round trip on the same stream, so one exchange proves both directions.
 */
export class EchoLines {
  /** When the stream closed (any way) and the error it closed with. */
  closedAt?: number
  closeError?: string
  private buffered = ''
  private readonly waiting = new Map<string, () => void>()

  constructor (readonly stream: Stream, readonly connection: Connection) {
    stream.addEventListener('message', event => { this.onData(decoder.decode(event.data.subarray())) })
    stream.addEventListener('close', event => {
      this.closedAt = Date.now()
      this.closeError = event.error == null ? undefined : `${event.error.name}: ${event.error.message}`
    })
  }

  /** Milliseconds from writing "echo <token>" to reading "<token>" back. */
  async roundTrip (signal: AbortSignal): Promise<number> {
    const token = randomUUID()
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const onAbort = (): void => { reject(new Error(`no echo within the deadline (stream ${this.stream.status})`)) }
    signal.addEventListener('abort', onAbort, { once: true })
    this.waiting.set(token, resolve)
    const start = performance.now()
    try {
      await this.write(`echo ${token}\n`, signal)
      await promise
      return performance.now() - start
    } finally {
      this.waiting.delete(token)
      signal.removeEventListener('abort', onAbort)
    }
  }

  private async write (line: string, signal?: AbortSignal): Promise<void> {
    if (!this.stream.send(encoder.encode(line))) await this.stream.onDrain({ signal })
  }

  private onData (text: string): void {
    this.buffered += text
    let end
    while ((end = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, end)
      this.buffered = this.buffered.slice(end + 1)
      if (line.startsWith('echo ')) {
        this.write(line.slice('echo '.length) + '\n').catch(() => {})
      } else {
        this.waiting.get(line)?.()
      }
    }
  }
}
