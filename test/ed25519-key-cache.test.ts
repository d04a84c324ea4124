import crypto from 'node:crypto'
import { generateKeyPair, publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { cachedEd25519Keys, installEd25519KeyCache, MAX_CACHED_KEYS } from '../src/node/ed25519-key-cache.js'
import { createSwarm, type Swarm } from '../src/node/swarm.js'
import { waitFor } from './helpers/wait.js'

const TOPIC = 'clawmatrix-test/key-cache'
const swarms: Swarm[] = []
afterEach(async () => {
  vi.restoreAllMocks()
  await Promise.allSettled(swarms.splice(0).map(async s => { await s.stop() }))
})

async function startSwarm (nodeId: string): Promise<Swarm> {
  const swarm = await createSwarm({ nodeId, secret: 'ed25519-key-cache-test-secret-0123', listen: true, listenHost: '127.0.0.1', listenPort: 0, announceAddresses: [] }, await generateKeyPair('Ed25519'))
  swarms.push(swarm)
  await swarm.start()
  return swarm
}

describe('Ed25519 key objects', () => {
  it('a gossipsub receiver builds one key object per publisher, not one per message it verifies', async () => {
    const a = await startSwarm('a')
    const b = await startSwarm('b')
    const received: string[] = []
    b.services.pubsub.addEventListener('message', event => { if (event.detail.topic === TOPIC) received.push(new TextDecoder().decode(event.detail.data)) })
    a.services.pubsub.subscribe(TOPIC)
    b.services.pubsub.subscribe(TOPIC)
    await a.dial(b.getMultiaddrs()[0]!)
    await waitFor('a to see b subscribed', () => a.services.pubsub.getSubscribers(TOPIC).some(p => p.equals(b.peerId)))
    // Warm: the first message may build a's key object (the Noise handshake already may have).
    await a.services.pubsub.publish(TOPIC, new TextEncoder().encode('warm-up'))
    await waitFor('b to receive the warm-up message', () => received.length === 1)

    // Every message gossipsub verifies (StrictSign) goes through @libp2p/crypto's Ed25519 verify.
    const built = vi.spyOn(crypto, 'createPublicKey')
    for (let i = 0; i < 20; i++) await a.services.pubsub.publish(TOPIC, new TextEncoder().encode(`message ${i}`))
    await waitFor('b to receive the 20 messages', () => received.length === 21)
    expect(built).toHaveBeenCalledTimes(0)
  })

  it('verifies as before: a good signature holds, another key, other data or a bad signature do not', async () => {
    installEd25519KeyCache()
    const signer = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const data = new TextEncoder().encode('a card')
    const signature = await signer.sign(data)
    // As gossipsub does: a fresh key from the message's protobuf-encoded key, every time.
    const key = (): ReturnType<typeof publicKeyFromProtobuf> => publicKeyFromProtobuf(publicKeyToProtobuf(signer.publicKey))
    for (let i = 0; i < 3; i++) expect(await key().verify(data, signature)).toBe(true)
    expect(await key().verify({ subarray: () => data } as unknown as Uint8Array, signature)).toBe(true) // a Uint8ArrayList
    expect(await key().verify(new TextEncoder().encode('another card'), signature)).toBe(false)
    expect(await other.publicKey.verify(data, signature)).toBe(false)
    const forged = signature.slice()
    forged[10] = forged[10]! ^ 1
    expect(await key().verify(data, forged)).toBe(false)
    // A signature of the wrong size is the original's TypeError, which gossipsub counts as invalid.
    expect(() => key().verify(data, signature.subarray(0, 63))).toThrow(TypeError)
  })

  it('keeps at most MAX_CACHED_KEYS key objects', async () => {
    installEd25519KeyCache()
    const data = new TextEncoder().encode('x')
    for (let i = 0; i < MAX_CACHED_KEYS + 20; i++) {
      const key = await generateKeyPair('Ed25519')
      expect(await key.publicKey.verify(data, await key.sign(data))).toBe(true)
    }
    expect(cachedEd25519Keys()).toBe(MAX_CACHED_KEYS)
  })
})
