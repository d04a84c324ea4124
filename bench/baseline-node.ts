/**
 * The baseline's process: a plain libp2p node (./lib/plain-node.ts) that
 * listens, prints a start line shaped like clawmatrix's, and stops on SIGTERM.
 *
 *   node bench/build/bench/baseline-node.js [--listen-host 127.0.0.1] [--listen-port 0]
 *   node bench/build/bench/baseline-node.js --dial <multiaddr>    a peer that listens nowhere and stays connected
 */
import { parseArgs } from 'node:util'
import { multiaddr } from '@multiformats/multiaddr'
import { createPlainNode } from './lib/plain-node.js'

const { values } = parseArgs({
  options: { 'listen-host': { type: 'string', default: '127.0.0.1' }, 'listen-port': { type: 'string', default: '0' }, dial: { type: 'string' } }
})
const dial = values.dial
const node = await createPlainNode(dial == null ? values['listen-host'] : undefined, Number(values['listen-port']))
await node.start()
if (dial != null) await node.dial(multiaddr(dial), { signal: AbortSignal.timeout(30_000) })
const listening = node.getMultiaddrs().join(', ')
process.stderr.write(`plain libp2p node started: peer id ${node.peerId}; listening on ${listening === '' ? 'nothing' : listening}\n`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    Promise.resolve(node.stop()).then(() => process.exit(0), () => process.exit(1))
  })
}
