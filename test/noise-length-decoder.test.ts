/**
 * Receiving a Noise message builds no error: two libp2p nodes (WebSocket,
 * Noise, Yamux, as the swarm builds them) echo small messages over one
 * stream while every RangeError constructed in the process is counted.
 *
 * As published (`checkedLengths: false`), @libp2p/noise's length decoder
 * throws a new RangeError after every message received, once the buffer is
 * empty (docs/upstream-noise-length-decoder.md); the gate's encrypters check
 * the length first and construct none.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { gatedEncrypters } from '../src/node/gate.js'
import { noiseEncrypter } from '../src/node/noise-encrypter.js'
import { webSocketTransport } from '../src/node/websocket-transport.js'
import { yamuxMuxer } from '../src/node/yamux-muxer.js'
import { echoOver } from './helpers/stream-echo.js'
import type { ConnectionEncrypter, Stream } from '@libp2p/interface'

const ECHO = '/clawmatrix-test/echo/1.0.0'
const SECRET = 'noise-length-decoder-test-secret'
const MESSAGES = 50

type Encrypters = () => Array<(components: any) => ConnectionEncrypter>

async function node (encrypters: Encrypters, listen: boolean): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0/ws'] : [] },
    transports: [webSocketTransport()],
    connectionEncrypters: encrypters(),
    streamMuxers: [yamuxMuxer()],
    connectionMonitor: { enabled: false }
  })
}

/** Writes `message` and waits for the same bytes to come back. */
async function echo (stream: Stream, message: Uint8Array): Promise<void> {
  expect(Buffer.from(await echoOver(stream, message)).equals(message)).toBe(true)
}

/** Runs `work` while counting the RangeErrors constructed, with or without `new`. */
async function countingRangeErrors (work: () => Promise<void>): Promise<number> {
  const original = globalThis.RangeError
  let constructed = 0
  globalThis.RangeError = new Proxy(original, {
    construct (target, args, newTarget) {
      constructed++
      return Reflect.construct(target, args, newTarget === globalThis.RangeError ? target : newTarget)
    },
    apply (target, self, args) {
      constructed++
      return Reflect.apply(target, self, args)
    }
  })
  try {
    await work()
  } finally {
    globalThis.RangeError = original
  }
  return constructed
}

describe('Noise length decoder', () => {
  const started: Libp2p[] = []
  afterEach(async () => {
    await Promise.all(started.splice(0).map(async n => { await n.stop() }))
  })

  /** Connects two nodes, then echoes MESSAGES small messages and a large one: the RangeErrors built meanwhile. */
  async function rangeErrorsWhileEchoing (encrypters: Encrypters): Promise<number> {
    const listener = await node(encrypters, true)
    const dialer = await node(encrypters, false)
    started.push(listener, dialer)
    await listener.handle(ECHO, stream => {
      stream.addEventListener('message', event => { stream.send(event.data) })
      stream.addEventListener('remoteCloseWrite', () => { void stream.close() })
    })
    const address = multiaddr(`${listener.getMultiaddrs()[0]!.toString()}`)
    const stream = await dialer.dialProtocol(address, ECHO, { signal: AbortSignal.timeout(10_000) })
    // The handshakes and the first exchanges are behind.
    await echo(stream, new Uint8Array(10).fill(1))
    const count = await countingRangeErrors(async () => {
      for (let i = 0; i < MESSAGES; i++) await echo(stream, new Uint8Array(100).fill(i))
      // Several Noise messages (at most 65,535 bytes each) in one write.
      await echo(stream, new Uint8Array(200_000).map((_, i) => i % 251))
    })
    await stream.close()
    return count
  }

  it("the gate's encrypters construct no RangeError per message received", async () => {
    expect(await rangeErrorsWhileEchoing(() => gatedEncrypters([SECRET]))).toBe(0)
  }, 60_000)

  it('as published (checkedLengths: false), constructs one per message received', async () => {
    const published = await rangeErrorsWhileEchoing(() => [noiseEncrypter({ checkedLengths: false })])
    // Each end receives every message once: the listener the message, the dialer its echo.
    expect(published).toBeGreaterThanOrEqual(2 * MESSAGES)
  }, 60_000)
})
