import { lpStream } from '@libp2p/utils'
import type { ConnectionEncrypter, ConnectionGater, PeerId, SecureConnectionOptions, SecuredConnection } from '@libp2p/interface'
import { AdmissionDeniedError, AdmissionRefusedError } from './errors.js'
import type { EncrypterFactory } from './noise-encrypter.js'

/**
 * The managed half of the gate (./gate.ts is the secret half). Once Noise
 * has authenticated a peer's key, both ends present a credential (in a
 * managed cluster: a certificate from the cluster's authority, and the
 * revocations this node knows) and judge the other's, before the connection
 * is handed to libp2p. So a refused peer never gets a muxer, a stream,
 * identify or gossip: the connection never opens. Relayed connections are
 * upgraded end to end through the same encrypter, so they pass here too.
 */
export interface Admission {
  /** What this node presents to every peer. */
  credential(): Uint8Array
  /** Judges a peer's credential; throws to refuse it (the message is told to the peer). */
  admit(peer: PeerId, credential: Uint8Array): void
  /** Peers refused before any handshake: dials to them, their connections and circuits through this node. */
  refuses(peer: PeerId): boolean
}

/** A credential holds a certificate and a revocation list; more than this is not one. */
export const MAX_CREDENTIAL_BYTES = 512 * 1024
const ADMITTED = 'ok'
/** How long a refusing end waits for the peer to take its refusal. */
const REFUSAL_LINGER_MS = 1_000
/** A refusal reason from the peer is shown to the user; it is cut and cleaned first. */
const MAX_REASON_CHARS = 300


/** Wraps an encrypter (Noise) so that every connection it secures is admitted before it is used. */
export function admitting (encrypter: EncrypterFactory, admission: Admission): EncrypterFactory {
  return (components) => new AdmittingEncrypter(encrypter(components), admission)
}

class AdmittingEncrypter implements ConnectionEncrypter {
  readonly protocol: string

  constructor (private readonly inner: ConnectionEncrypter, private readonly admission: Admission) {
    this.protocol = inner.protocol
  }

  readonly [Symbol.toStringTag] = 'clawmatrix-admission'

  async secureInbound (connection: any, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    return this.exchange(await this.inner.secureInbound(connection, options), options)
  }

  async secureOutbound (connection: any, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    return this.exchange(await this.inner.secureOutbound(connection, options), options)
  }

  /** Both ends write, then read: a credential, then a verdict. One round trip over the secured channel. */
  private async exchange (secured: SecuredConnection, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    const lp = lpStream(secured.connection, { maxDataLength: MAX_CREDENTIAL_BYTES })
    const signal = options?.signal
    await lp.write(this.admission.credential(), { signal })
    const theirs = await lp.read({ signal })
    let refusal: string | undefined
    try {
      this.admission.admit(secured.remotePeer, theirs.subarray())
    } catch (err: any) {
      refusal = err.message
    }
    await lp.write(new TextEncoder().encode(refusal ?? ADMITTED), { signal })
    if (refusal != null) {
      // Wait briefly for the peer's verdict so our refusal reaches it before the connection is reset;
      // a peer that speaks no admission (an unmanaged member) never sends one.
      await lp.read({ signal: anySignal(signal, AbortSignal.timeout(REFUSAL_LINGER_MS)) }).catch(() => {})
      throw new AdmissionRefusedError(refusal)
    }
    const verdict = new TextDecoder().decode((await lp.read({ signal })).subarray())
    lp.unwrap()
    if (verdict !== ADMITTED) throw new AdmissionDeniedError(`the peer refused this node: ${cleanReason(verdict)}`)
    return secured
  }
}

/** Refuses dials to, connections from and circuits for peers the admission refuses outright (revoked). */
export function admissionGater (admission: Admission): ConnectionGater {
  return {
    denyDialPeer: peer => admission.refuses(peer),
    denyInboundEncryptedConnection: peer => admission.refuses(peer),
    denyOutboundEncryptedConnection: peer => admission.refuses(peer),
    denyInboundRelayReservation: peer => admission.refuses(peer),
    denyOutboundRelayedConnection: (source, destination) => admission.refuses(source) || admission.refuses(destination),
    denyInboundRelayedConnection: (relay, remote) => admission.refuses(relay) || admission.refuses(remote)
  }
}

function anySignal (signal: AbortSignal | undefined, timeout: AbortSignal): AbortSignal {
  return signal == null ? timeout : AbortSignal.any([signal, timeout])
}

function cleanReason (text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')
  return clean.length > MAX_REASON_CHARS ? `${clean.slice(0, MAX_REASON_CHARS)}...` : clean
}
