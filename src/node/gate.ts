import { createHmac } from 'node:crypto'

/**
 * The membership gate. Every connection is secured with Noise XX, and the
 * Noise prologue is bound to the cluster secret: both ends mix
 * HMAC-SHA256(secret, GATE_LABEL) into the handshake hash, so a peer that
 * derives a different value fails to decrypt the first encrypted handshake
 * message and the connection never opens. The secret itself, and the derived
 * value, never cross the wire. See docs/gate.md for the threat model.
 */
export const GATE_LABEL = 'clawmatrix/gate/v1'

export function gatePrologue (secret: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret).update(GATE_LABEL).digest())
}
