import { createHash } from 'node:crypto'

/** The fields of a gossipsub RPC message the fast id covers (@libp2p/gossipsub's `RPC.Message`). */
export interface RawGossipMessage {
  from?: Uint8Array
  data?: Uint8Array
  seqno?: Uint8Array
  topic: string
  signature?: Uint8Array
  key?: Uint8Array
}

/**
 * Gossipsub's `fastMsgIdFn`: an id of a received message's exact bytes,
 * computed before anything is checked.
 *
 * @libp2p/gossipsub 17 checks a message's signature (StrictSign) before it
 * looks the message up in its seen-cache, so every copy of a card costs an
 * Ed25519 verification (~0.25 ms here), the duplicates too: a member hears
 * each card from both its relays, a relay from several of its mesh peers.
 * With a fast id, a copy whose id is cached is dropped as a duplicate first.
 * Gossipsub caches the id only once the signature verified, so a copy is
 * skipped only if it is byte for byte a message this node already checked:
 * every field is hashed, each with its length, so no two messages share an id
 * unless they are the same message (a forgery with another signature, data or
 * seqno is verified, and rejected, as before).
 */
export function fastGossipMessageId (message: RawGossipMessage): string {
  const hash = createHash('sha256')
  for (const field of [message.from, message.data, message.seqno, message.signature, message.key]) {
    const length = Buffer.allocUnsafe(4)
    length.writeUInt32BE(field?.byteLength ?? 0xffffffff)
    hash.update(length)
    if (field != null) hash.update(field)
  }
  hash.update(message.topic)
  return hash.digest('base64')
}
