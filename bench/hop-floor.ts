/**
 * The floor under a mesh hop: one small message's round trip to another
 * process and back, on loopback, over
 *
 * - raw TCP (Nagle off): the kernel and two process wake-ups;
 * - a stream on a clawmatrix connection (WebSocket, Noise, yamux; the
 *   stream kept open, as kept model streams are), echoed by the peer's
 *   stream handler: everything libp2p adds to a message each way;
 * - yamux's own ping on that connection: the same without the stream layer.
 *
 * A model request over one hop makes exactly one such round trip before its
 * first byte (request to the host, answer with the first chunk back), so the
 * difference between the rows is what the transport itself costs the hop;
 * the rest of the hop's time is the two nodes' own work (docs/benchmarks.md).
 * Requests one at a time, the variants interleaved, 1 ms idle between
 * requests (as between the stages of a real request: both processes go back
 * to waiting in between).
 */
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { spawnNodeUntilReady } from './lib/child.js'
import { importDist } from './lib/dist.js'
import { requireBuilt } from './lib/paths.js'
import type { BenchResult, Variant } from './lib/report.js'
import type { Stream, StreamMessageEvent } from '@libp2p/interface'

const { createSwarm } = await importDist<typeof import('../src/node/swarm.js')>('node/swarm.js')

export interface HopFloorOptions {
  /** Round trips per variant, after `warmup` unrecorded ones; bytes per message. */
  requests: number
  warmup: number
  messageBytes: number
  progress: (line: string) => void
}

export const HOP_FLOOR_DEFAULTS: Omit<HopFloorOptions, 'progress'> = { requests: 2_000, warmup: 300, messageBytes: 300 }
export const HOP_FLOOR_QUICK: Omit<HopFloorOptions, 'progress'> = { requests: 100, warmup: 20, messageBytes: 300 }

const ECHO_PROTOCOL = '/clawmatrix-bench/echo/1.0.0'
const PEER = fileURLToPath(new URL('./lib/hop-floor-peer.js', import.meta.url))

export async function hopFloorBench (options: HopFloorOptions): Promise<BenchResult> {
  const secret = randomBytes(32).toString('hex')
  options.progress('starting the echo peer and a clawmatrix swarm node')
  const peer = await spawnNodeUntilReady([requireBuilt(PEER), secret], { ready: /hop-floor peer (\{.*\})/ })
  const where = JSON.parse(peer.match[1]!) as { libp2p: string, tcp: number }
  const swarm = await createSwarm({ nodeId: 'floor-caller', secret, listen: true, listenHost: '127.0.0.1', listenPort: 0, announceAddresses: [] }, await generateKeyPair('Ed25519'))
  let socket: Socket | undefined
  try {
    await swarm.start()
    const connection = await swarm.dial(multiaddr(where.libp2p))
    const stream = await connection.newStream(ECHO_PROTOCOL)
    // Not in libp2p's public Connection type: the muxer its connections carry in libp2p 3.
    const muxer = (connection as unknown as { muxer?: { ping?: () => Promise<number> } }).muxer
    if (typeof muxer?.ping !== 'function') throw new Error('the connection exposes no yamux ping (libp2p changed?)')
    const ping = muxer.ping.bind(muxer)
    const tcp = connect(where.tcp, '127.0.0.1')
    socket = tcp
    tcp.setNoDelay(true)
    await new Promise<void>((resolve, reject) => { tcp.once('connect', resolve).once('error', reject) })

    const message = new Uint8Array(options.messageBytes).fill(0x61)
    const variants: Array<Variant & { roundTrip: () => Promise<unknown> }> = [
      { name: 'raw TCP', samples: [], baseline: true, roundTrip: async () => { await tcpEcho(tcp, message) } },
      { name: 'clawmatrix connection, kept stream', samples: [], roundTrip: async () => { await streamEcho(stream, message) } },
      { name: 'clawmatrix connection, yamux ping', samples: [], roundTrip: async () => await ping() }
    ]
    options.progress(`${options.warmup} warm-up + ${options.requests} round trips per variant, ${options.messageBytes}-byte messages, interleaved`)
    for (let i = -options.warmup; i < options.requests; i++) {
      for (const variant of rotate(variants, i)) {
        const start = performance.now()
        await variant.roundTrip()
        if (i >= 0) variant.samples.push((performance.now() - start) * 1000)
        await sleep(1)
      }
    }
    return {
      name: 'hop-floor',
      title: 'the floor under a mesh hop: one message to another process and back (loopback)',
      measurements: [{
        what: `round trip of a ${options.messageBytes}-byte message`,
        unit: 'us',
        variants: variants.map(({ name, samples, baseline }) => ({ name, samples, baseline })),
        note: 'one at a time, variants interleaved, 1 ms idle between round trips; the echo runs in its own process'
      }]
    }
  } finally {
    socket?.destroy()
    await swarm.stop()
    await peer.stop()
  }
}

/** Writes `message` on the socket; resolves once as many bytes came back. */
async function tcpEcho (socket: Socket, message: Uint8Array): Promise<void> {
  await new Promise<void>(resolve => {
    let received = 0
    const onData = (data: Buffer): void => {
      received += data.byteLength
      if (received < message.byteLength) return
      socket.off('data', onData)
      resolve()
    }
    socket.on('data', onData)
    socket.write(message)
  })
}

/** Sends `message` on the stream; resolves once as many bytes came back. */
async function streamEcho (stream: Stream, message: Uint8Array): Promise<void> {
  await new Promise<void>(resolve => {
    let received = 0
    const onMessage = (event: StreamMessageEvent): void => {
      received += event.data.byteLength
      if (received < message.byteLength) return
      stream.removeEventListener('message', onMessage)
      resolve()
    }
    stream.addEventListener('message', onMessage)
    stream.send(message)
  })
}

/** The variants in an order that moves by one each round, so none is always first. */
function rotate<T> (items: T[], round: number): T[] {
  const at = ((round % items.length) + items.length) % items.length
  return [...items.slice(at), ...items.slice(0, at)]
}
