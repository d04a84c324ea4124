import { createHmac } from 'node:crypto'
import { noiseEncrypter, type EncrypterFactory } from './noise-encrypter.js'

/**
 * The membership gate. Every connection is secured with Noise XX, and the
 * Noise prologue is bound to the cluster secret: both ends mix
 * HMAC-SHA256(secret, GATE_LABEL) into the handshake hash, so a peer that
 * derives a different value fails to decrypt the first encrypted handshake
 * message and the connection never opens. The secret itself, and the derived
 * value, never cross the wire. See docs/gate.md for the threat model.
 */
export const GATE_LABEL = 'clawmatrix/gate/v1'
const FINGERPRINT_LABEL = 'clawmatrix/gate/v1/fingerprint'
/** Noise under one secret, named by the secret's fingerprint: `/clawmatrix/noise/1/<fingerprint>`. */
export const GATED_NOISE_PREFIX = '/clawmatrix/noise/1/'
/** Plain Noise, as other libp2p tools propose it; bound to this node's first secret. */
export const PLAIN_NOISE = '/noise'

export function gatePrologue (secret: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret).update(GATE_LABEL).digest())
}

/**
 * Names a secret without revealing it (64 bits of an HMAC under a label of
 * its own, so it tells nothing about the prologue): what status, logs and
 * the encrypter's protocol id show.
 */
export function secretFingerprint (secret: string): string {
  return createHmac('sha256', secret).update(FINGERPRINT_LABEL).digest('hex').slice(0, 16)
}

/** Which of this node's secrets a connection was secured with. */
export interface SecretUsed {
  /** Its position in this node's list (0: the newest, which this node dials with first). */
  index: number
  fingerprint: string
}


/**
 * The encrypters of a node that accepts any of `secrets` (newest first): one
 * Noise per secret, each under a protocol id naming the secret's fingerprint,
 * then plain `/noise` under the first. The listener learns from
 * multistream-select which secret the dialer holds before Noise starts, so it
 * can answer under that prologue; a dialer proposes its secrets in order and
 * takes the first the listener also holds (one round trip per miss). A peer
 * that shares none ends at `/noise` with the wrong prologue, which fails as
 * a refused secret. `wrap` adds the managed gate around each.
 */
export function gatedEncrypters (secrets: readonly string[], wrap: (encrypter: EncrypterFactory) => EncrypterFactory = e => e): EncrypterFactory[] {
  if (secrets.length === 0) throw new Error('a node needs at least one cluster secret')
  return [
    ...secrets.map(secret => wrap(renamed(noiseEncrypter({ prologueBytes: gatePrologue(secret) }), GATED_NOISE_PREFIX + secretFingerprint(secret)))),
    wrap(noiseEncrypter({ prologueBytes: gatePrologue(secrets[0]!) }))
  ]
}

/** The secret a connection's encrypter protocol (`connection.encryption`) stands for, if it is one of `secrets`. */
export function secretUsed (encryption: string | undefined, secrets: readonly string[]): SecretUsed | undefined {
  if (encryption === PLAIN_NOISE) return secrets.length === 0 ? undefined : { index: 0, fingerprint: secretFingerprint(secrets[0]!) }
  if (encryption?.startsWith(GATED_NOISE_PREFIX) !== true) return undefined
  const fingerprint = encryption.slice(GATED_NOISE_PREFIX.length)
  const index = secrets.findIndex(secret => secretFingerprint(secret) === fingerprint)
  return index < 0 ? undefined : { index, fingerprint }
}

/** The same encrypter under another protocol id. */
function renamed (factory: EncrypterFactory, protocol: string): EncrypterFactory {
  return components => {
    const inner = factory(components)
    return {
      protocol,
      secureInbound: async (connection, options) => inner.secureInbound(connection, options),
      secureOutbound: async (connection, options) => inner.secureOutbound(connection, options)
    }
  }
}
