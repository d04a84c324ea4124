/**
 * The far side of `npm run bench -- hop-floor`, in its own process: echoes
 * whatever arrives on a raw TCP socket and on a stream of
 * `/clawmatrix-bench/echo/1.0.0` on a clawmatrix swarm (createSwarm with the
 * secret: WebSocket, Noise with the secret-bound prologue, yamux), and
 * prints one line `hop-floor peer {json}` with where to reach each.
 *
 *   node bench/build/bench/lib/hop-floor-peer.js <secret>
 */
import { createServer } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { importDist } from './dist.js'
import type { Stream, StreamMessageEvent } from '@libp2p/interface'

const { createSwarm } = await importDist<typeof import('../../src/node/swarm.js')>('node/swarm.js')

export const ECHO_PROTOCOL = '/clawmatrix-bench/echo/1.0.0'

const secret = process.argv[2]
if (secret == null) throw new Error('usage: hop-floor-peer.js <secret>')

const swarm = await createSwarm({ nodeId: 'floor-peer', secret, listen: true, listenHost: '127.0.0.1', listenPort: 0, announceAddresses: [] }, await generateKeyPair('Ed25519'))
await swarm.start()
await swarm.handle(ECHO_PROTOCOL, (stream: Stream) => {
  stream.addEventListener('message', (event: StreamMessageEvent) => {
    stream.send(event.data instanceof Uint8Array ? event.data : event.data.subarray())
  })
})
const tcp = createServer(socket => {
  socket.setNoDelay(true)
  socket.on('data', data => socket.write(data))
})
await new Promise<void>(resolve => tcp.listen(0, '127.0.0.1', resolve))

const port = (address: unknown): number => (address as { port: number }).port
const libp2p = swarm.getMultiaddrs().map(String).find(addr => addr.includes('/ws/'))
process.stdout.write(`hop-floor peer ${JSON.stringify({ libp2p, tcp: port(tcp.address()) })}\n`)
process.once('SIGTERM', () => {
  tcp.close()
  Promise.resolve(swarm.stop()).then(() => process.exit(0), () => process.exit(1))
})
