/**
 * The baseline's process: a plain libp2p node (./lib/plain-node.ts) that
 * listens, prints a start line shaped like clawmatrix's, and stops on SIGTERM.
 *
 *   node bench/build/bench/baseline-node.js [--listen-host 127.0.0.1] [--listen-port 0]
 */
import { parseArgs } from 'node:util'
import { createPlainNode } from './lib/plain-node.js'

const { values } = parseArgs({
  options: { 'listen-host': { type: 'string', default: '127.0.0.1' }, 'listen-port': { type: 'string', default: '0' } }
})
const node = await createPlainNode(values['listen-host'], Number(values['listen-port']))
await node.start()
process.stderr.write(`plain libp2p node started: peer id ${node.peerId}; listening on ${node.getMultiaddrs().join(', ')}\n`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    Promise.resolve(node.stop()).then(() => process.exit(0), () => process.exit(1))
  })
}
