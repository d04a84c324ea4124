import crypto, { type KeyObject } from 'node:crypto'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'

/** Keys kept; past it the oldest is forgotten (a key costs ~16 us to build again). */
export const MAX_CACHED_KEYS = 4096

const RAW_KEY_BYTES = 32
const SIGNATURE_BYTES = 64
const INSTALLED = Symbol.for('clawmatrix.ed25519-key-cache')

/** Node key objects by raw public key (as a latin1 string): one per publisher, not one per signature. */
const keys = new Map<string, KeyObject>()

interface Ed25519PublicKeyShape {
  raw: Uint8Array
  verify: (data: Uint8Array | { subarray: () => Uint8Array }, sig: Uint8Array, options?: { signal?: AbortSignal }) => boolean | Promise<boolean>
  [INSTALLED]?: true
}

/**
 * Makes @libp2p/crypto's Ed25519 verification reuse one Node key object per
 * public key.
 *
 * @libp2p/crypto 5.1 verifies an Ed25519 signature with Node's native
 * Ed25519, but builds the key object from a JWK on every call
 * (`hashAndVerify`: `crypto.createPublicKey({format: 'jwk', ...})`), and
 * gossipsub (StrictSign) parses a fresh key from every message's `key`
 * field, so nothing is kept between two cards of one publisher. In the
 * cluster bench's profiles that was half of the members' Ed25519 time; every
 * member verifies every card, so it is paid N times per card. There is no
 * hook for it in gossipsub or libp2p, so this replaces `verify` on the
 * Ed25519 public key class (one per process, found through a key of its own)
 * with the same checks and the same `crypto.verify`, on a cached key object.
 * Anything the original would treat differently (another key or signature
 * size) goes to the original. Idempotent. docs/upstream-crypto-ed25519.md
 * describes it for upstream.
 */
export function installEd25519KeyCache (): void {
  const prototype = Object.getPrototypeOf(publicKeyFromRaw(new Uint8Array(RAW_KEY_BYTES))) as Ed25519PublicKeyShape
  if (prototype[INSTALLED] === true) return
  const original = prototype.verify
  prototype.verify = function (this: Ed25519PublicKeyShape, data, sig, options) {
    if (!(this.raw instanceof Uint8Array) || this.raw.byteLength !== RAW_KEY_BYTES || !(sig instanceof Uint8Array) || sig.byteLength !== SIGNATURE_BYTES) {
      return original.call(this, data, sig, options)
    }
    options?.signal?.throwIfAborted()
    return crypto.verify(null, data instanceof Uint8Array ? data : data.subarray(), keyObject(this.raw), sig)
  }
  prototype[INSTALLED] = true
}

/** How many key objects are cached (for tests: the cache stays bounded). */
export function cachedEd25519Keys (): number {
  return keys.size
}

function keyObject (raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1')
  let key = keys.get(id)
  if (key == null) {
    // As @libp2p/crypto builds it; a key that does not import throws here, as it did there (gossipsub rejects the message).
    key = crypto.createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') } })
    keys.set(id, key)
    for (const oldest of keys.keys()) {
      if (keys.size <= MAX_CACHED_KEYS) break
      keys.delete(oldest)
    }
  }
  return key
}
