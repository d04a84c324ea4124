import { generateKeyPair } from '@libp2p/crypto/keys'
import { importDist } from './dist.js'
import { createPlainNode, type PlainNode } from './plain-node.js'
import type { Swarm } from '../../src/node/swarm.js'

const { createSwarm } = await importDist<typeof import('../../src/node/swarm.js')>('node/swarm.js')

/** A libp2p node of either kind, as far as the benchmarks use it. */
export type AnyNode = Swarm | PlainNode

/**
 * A started clawmatrix swarm node (the real createSwarm, gate included) that
 * listens on loopback. It listens so that it never asks the node it dials for
 * a relay reservation, which would add traffic and redials to a dial loop.
 */
export async function startMember (nodeId: string, secret: string): Promise<Swarm> {
  const swarm = await createSwarm({
    nodeId,
    secret,
    listen: true,
    listenHost: '127.0.0.1',
    listenPort: 0,
    announceAddresses: []
  }, await generateKeyPair('Ed25519'))
  await swarm.start()
  return swarm
}

/** A started baseline node listening on loopback (see ./plain-node.ts). */
export async function startPlain (): Promise<PlainNode> {
  const node = await createPlainNode('127.0.0.1', 0)
  await node.start()
  return node
}

/** Stops nodes, ignoring failures: used in cleanup paths. */
export async function stopAll (nodes: Iterable<AnyNode | undefined>): Promise<void> {
  await Promise.allSettled([...nodes].map(async node => { await node?.stop() }))
}
