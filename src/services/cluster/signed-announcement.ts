import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { ANNOUNCE_TOPIC } from './card.js'
import { encodeVarint } from '../wire/frame.js'
import type { SignedMessage } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey } from '@libp2p/interface'

/**
 * An announcement exactly as its publisher signed it for gossipsub: the
 * fields of a libp2p pubsub `Message` (the topic is always ANNOUNCE_TOPIC).
 * A card passed on in a snapshot (./card-snapshot.ts) travels in this form,
 * so whoever receives it checks the publisher's own signature, not the word
 * of the peer that passed it on.
 */
export interface SignedAnnouncement {
  /** The publisher's peer id as multihash bytes. */
  from: Uint8Array
  /** The announcement (a card's JSON). */
  data: Uint8Array
  /** Gossipsub's 8-byte sequence number (not the card's `seq`). */
  seqno: Uint8Array
  signature: Uint8Array
  /** The publisher's public key, protobuf-encoded. */
  key: Uint8Array
}

/** libp2p-pubsub signs these bytes followed by the protobuf of {from, data, seqno, topic}. */
const SIGN_PREFIX = new TextEncoder().encode('libp2p-pubsub:')
const TOPIC_BYTES = new TextEncoder().encode(ANNOUNCE_TOPIC)
const SEQNO_BYTES = 8

/** The snapshot form of a message gossipsub validated (its signature was checked there). */
export function signedAnnouncementOf (message: SignedMessage): SignedAnnouncement {
  return {
    from: message.from.toMultihash().bytes,
    data: message.data,
    seqno: seqnoBytes(message.sequenceNumber),
    signature: message.signature,
    key: publicKeyToProtobuf(message.key)
  }
}

/**
 * Signs `data` as gossipsub would publish it on the announcement topic: for
 * this node's own card in a snapshot (gossipsub keeps the messages it
 * publishes to itself). `seqno` is any 8-byte number; the card's `seq` is
 * what orders cards.
 */
export async function signAnnouncement (privateKey: PrivateKey, data: Uint8Array, seqno: bigint): Promise<SignedAnnouncement> {
  const from = peerIdFromPublicKey(privateKey.publicKey).toMultihash().bytes
  const seqnoField = seqnoBytes(seqno)
  const signature = await privateKey.sign(signedBytes(from, data, seqnoField))
  return { from, data, seqno: seqnoField, signature, key: publicKeyToProtobuf(privateKey.publicKey) }
}

/**
 * Checks a signed announcement the way gossipsub's StrictSign does: an
 * 8-byte seqno, a key whose peer id is `from`, and a signature by that key
 * over the message on the announcement topic. Returns the publisher, or
 * throws with the reason.
 */
export async function verifyAnnouncement (signed: SignedAnnouncement): Promise<PeerId> {
  if (signed.seqno.byteLength !== SEQNO_BYTES) throw new Error(`a seqno of ${signed.seqno.byteLength} bytes, not ${SEQNO_BYTES}`)
  let publisher: PeerId
  let key: ReturnType<typeof publicKeyFromProtobuf>
  try {
    key = publicKeyFromProtobuf(signed.key)
    publisher = peerIdFromPublicKey(key)
  } catch {
    throw new Error('a public key that does not parse')
  }
  if (!sameBytes(publisher.toMultihash().bytes, signed.from)) throw new Error(`the key of ${publisher.toString()} with another peer's id in from`)
  let valid: boolean
  try {
    valid = await key.verify(signedBytes(signed.from, signed.data, signed.seqno), signed.signature)
  } catch {
    valid = false
  }
  if (!valid) throw new Error(`a signature that is not ${publisher.toString()}'s`)
  return publisher
}

/** "libp2p-pubsub:" + the protobuf of pubsub `Message` {from = 1, data = 2, seqno = 3, topic = 4}. */
function signedBytes (from: Uint8Array, data: Uint8Array, seqno: Uint8Array): Uint8Array {
  const fields = [field(1, from), field(2, data), field(3, seqno), field(4, TOPIC_BYTES)]
  const out = new Uint8Array(SIGN_PREFIX.byteLength + fields.reduce((sum, f) => sum + f.byteLength, 0))
  out.set(SIGN_PREFIX, 0)
  let at = SIGN_PREFIX.byteLength
  for (const f of fields) {
    out.set(f, at)
    at += f.byteLength
  }
  return out
}

/** A length-delimited protobuf field: its tag (wire type 2), the length as a varint, the bytes. */
function field (number: number, bytes: Uint8Array): Uint8Array {
  const length = encodeVarint(bytes.byteLength)
  const out = new Uint8Array(1 + length.byteLength + bytes.byteLength)
  out[0] = (number << 3) | 2
  out.set(length, 1)
  out.set(bytes, 1 + length.byteLength)
  return out
}

function seqnoBytes (value: bigint): Uint8Array {
  const out = new Uint8Array(SEQNO_BYTES)
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, value), false)
  return out
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}
