import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterEach, describe, expect, it } from 'vitest'
import { fastGossipMessageId, type RawGossipMessage } from '../src/node/gossip-message-id.js'
import { createSwarm, type Swarm } from '../src/node/swarm.js'
import { waitFor } from './helpers/wait.js'

const TOPIC = 'clawmatrix-test/duplicates'
const swarms: Swarm[] = []
afterEach(async () => {
  await Promise.allSettled(swarms.splice(0).map(async s => { await s.stop() }))
})

async function startSwarm (nodeId: string): Promise<Swarm> {
  const swarm = await createSwarm({ nodeId, secret: 'gossip-duplicates-test-secret-0123', listen: true, listenHost: '127.0.0.1', listenPort: 0, announceAddresses: [] }, await generateKeyPair('Ed25519'))
  swarms.push(swarm)
  await swarm.start()
  return swarm
}

/** How many peers gossipsub grafted into its mesh for TOPIC (not in the GossipSub type, there at runtime). */
function meshSize (swarm: Swarm): number {
  const { mesh } = swarm.services.pubsub as unknown as { mesh?: Map<string, Set<string>> }
  if (mesh == null) throw new Error('gossipsub has no mesh map (another @libp2p/gossipsub version?)')
  return mesh.get(TOPIC)?.size ?? 0
}

/** Counts the copies of messages gossipsub found to be duplicates (its message cache is told of each). */
function countDuplicates (swarm: Swarm): { count: number } {
  const counter = { count: 0 }
  const mcache = (swarm.services.pubsub as unknown as { mcache?: { observeDuplicate?: (...args: unknown[]) => void } }).mcache
  const observe = mcache?.observeDuplicate
  if (mcache == null || observe == null) throw new Error('gossipsub has no mcache.observeDuplicate to count duplicates with (another @libp2p/gossipsub version?)')
  mcache.observeDuplicate = (...args: unknown[]) => {
    counter.count++
    observe.apply(mcache, args)
  }
  return counter
}

describe('gossip duplicates', () => {
  it('a copy of a message already verified is dropped before its signature is checked again', async () => {
    const a = await startSwarm('a')
    const b = await startSwarm('b')
    const c = await startSwarm('c')
    // A triangle: b and c each hear a's message from a and again from the other.
    await a.dial(b.getMultiaddrs()[0]!)
    await a.dial(c.getMultiaddrs()[0]!)
    await b.dial(c.getMultiaddrs()[0]!)
    for (const s of [a, b, c]) s.services.pubsub.subscribe(TOPIC)
    await waitFor('every mesh to hold both other peers', () =>
      [a, b, c].every(s => meshSize(s) === 2), { timeoutMs: 30_000 })

    // Every Ed25519 verification of the marked message, in any of the three nodes (one process).
    const marker = Buffer.from(`duplicate-marker-${Math.random()}`)
    const prototype = Object.getPrototypeOf((await generateKeyPair('Ed25519')).publicKey) as { verify: (data: Uint8Array, sig: Uint8Array, ...rest: unknown[]) => unknown }
    const verify = prototype.verify
    let verified = 0
    prototype.verify = function (this: unknown, data: Uint8Array, sig: Uint8Array, ...rest: unknown[]) {
      if (Buffer.from(data instanceof Uint8Array ? data : new Uint8Array(0)).includes(marker)) verified++
      return verify.call(this, data, sig, ...rest)
    }
    try {
      const duplicates = [b, c].map(countDuplicates)
      const delivered = [b, c].map(s => new Promise<void>(resolve => {
        s.services.pubsub.addEventListener('message', event => { if (Buffer.from(event.detail.data).includes(marker)) resolve() })
      }))
      await a.services.pubsub.publish(TOPIC, marker)
      await Promise.all(delivered)
      await waitFor('b and c to receive the message a second time, from each other', () => duplicates.every(d => d.count >= 1), { timeoutMs: 30_000 })
      // b and c verified their first copy; the second was dropped before its signature was checked.
      expect(verified).toBe(2)
    } finally {
      prototype.verify = verify
    }
  })

  it('the fast id covers every field of the message', () => {
    const message: RawGossipMessage = {
      from: new Uint8Array([1, 2, 3]),
      data: new Uint8Array([4, 5]),
      seqno: new Uint8Array(8).fill(6),
      topic: TOPIC,
      signature: new Uint8Array(64).fill(7),
      key: new Uint8Array([8])
    }
    const id = fastGossipMessageId(message)
    expect(fastGossipMessageId({ ...message, data: new Uint8Array([4, 5]) })).toBe(id)
    const changed: RawGossipMessage[] = [
      { ...message, from: new Uint8Array([1, 2, 4]) },
      { ...message, data: new Uint8Array([4, 6]) },
      { ...message, seqno: new Uint8Array(8).fill(9) },
      { ...message, topic: `${TOPIC}-other` },
      { ...message, signature: new Uint8Array(64).fill(1) },
      { ...message, key: undefined },
      // Bytes moved from one field to the next are another message.
      { ...message, from: new Uint8Array([1, 2, 3, 4]), data: new Uint8Array([5]) }
    ]
    for (const other of changed) expect(fastGossipMessageId(other)).not.toBe(id)
  })
})
