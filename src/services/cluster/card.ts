import Type, { type Static, type TSchema } from 'typebox'
import { Compile, type Validator } from 'typebox/compile'
import { Name, PRINTABLE_PATTERN } from '../../config/schema.js'

/**
 * What a node announces about itself on the announcement topic. Cards travel
 * in gossipsub messages signed with the sender's peer key; a card is only
 * believed when its `peerId` is the message's signer (see ./announcer.ts).
 */
export const ANNOUNCE_TOPIC = '/clawmatrix/announce/1.0.0'
export const CARD_VERSION = 1
export const MAX_CARD_BYTES = 64 * 1024

/** Peer ids as strings (base58btc or base32 CIDs): letters and digits only. */
const PeerIdText = Type.String({ pattern: '^[A-Za-z0-9]{1,128}$' })
/** Anything shown to an operator: no control characters, so nothing can forge a log line or table row. */
const Text = (maxLength: number) => Type.String({ maxLength, pattern: PRINTABLE_PATTERN })
const Ids = Type.Array(Text(256), { maxItems: 256 })
const Addresses = Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { maxItems: 64 })

export const LinkSchema = Type.Object({
  peerId: PeerIdText,
  /** Addresses the announcing node knows for that peer; a hint for dialing, checked by Noise on dial. */
  addresses: Addresses,
  relayed: Type.Boolean()
})

export const CardSchema = Type.Object({
  v: Type.Literal(CARD_VERSION),
  kind: Type.Literal('card'),
  nodeId: Name(),
  peerId: PeerIdText,
  version: Text(64),
  /** Grows with every card, across restarts too; older cards are replays. */
  seq: Type.Integer({ minimum: 0 }),
  /** The sender re-announces this often; it expires after three silent periods. */
  intervalMs: Type.Integer({ minimum: 100 }),
  addresses: Addresses,
  // Descriptions may hold newlines; whoever prints one escapes it (src/node/escape.ts).
  agents: Type.Array(Type.Object({ id: Name(), description: Type.String({ maxLength: 4096 }), tags: Ids }), { maxItems: 256 }),
  models: Type.Array(Type.Object({
    id: Text(256),
    provider: Text(256),
    description: Type.Optional(Type.String({ maxLength: 4096 })),
    /** Requests the node serves at once for this model; callers route around a host they know is full. */
    maxConcurrent: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Models to try when no host of this one can take a request. */
    fallbacks: Type.Optional(Type.Array(Text(256), { maxItems: 16 }))
  }), { maxItems: 256 }),
  tags: Ids,
  toolProxy: Type.Object({ enabled: Type.Boolean(), allow: Ids, deny: Ids }),
  links: Type.Array(LinkSchema, { maxItems: 1024 }),
  /**
   * Managed clusters: the sender's certificate from the cluster authority.
   * Receivers check it (../../membership) and take the name and tags from it.
   */
  certificate: Type.Optional(Type.Unknown()),
  /** A graceful stop: drop this node from the view now. */
  leaving: Type.Optional(Type.Boolean())
})

/** "I lost this peer after missed heartbeats": a hint, re-checked by every receiver. */
export const GoneSchema = Type.Object({
  v: Type.Literal(CARD_VERSION),
  kind: Type.Literal('gone'),
  peerId: PeerIdText,
  seq: Type.Integer({ minimum: 0 }),
  gonePeerId: PeerIdText
})

export type Card = Static<typeof CardSchema>
export type Link = Static<typeof LinkSchema>
export type GoneNotice = Static<typeof GoneSchema>
export type Announcement = Card | GoneNotice

export function encodeAnnouncement (announcement: Announcement): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(announcement))
}

/** Parses and checks the shape of an announcement; throws with the reason. */
export function decodeAnnouncement (data: Uint8Array): Announcement {
  if (data.byteLength > MAX_CARD_BYTES) throw new Error(`announcement of ${data.byteLength} bytes exceeds ${MAX_CARD_BYTES}`)
  let json: any
  try {
    json = JSON.parse(new TextDecoder().decode(data))
  } catch {
    throw new Error('announcement is not JSON')
  }
  const kind: unknown = json?.kind
  const validator = kind === 'gone' ? validators().gone : validators().card
  if (!validator.Check(json)) {
    const first = validator.Errors(json)[0]
    throw new Error(`malformed ${typeof kind === 'string' ? kind : 'announcement'}: ${first?.instancePath || '/'} ${first?.message ?? ''}`.trim())
  }
  return json as Announcement
}

/**
 * The schemas compiled to checking functions, on first use. Every node
 * checks every announcement it receives: each member's card every period,
 * mostly unchanged. A compiled check of a 750-byte card takes ~10 µs where
 * `Value.Check` took ~190-280 µs (docs/benchmarks.md, Idle CPU); compiling
 * both takes ~3 ms, so not at import (the CLI's --help does not need it).
 */
let compiled: { card: Validator<{}, TSchema>, gone: Validator<{}, TSchema> } | undefined
function validators (): NonNullable<typeof compiled> {
  compiled ??= { card: Compile(CardSchema), gone: Compile(GoneSchema) }
  return compiled
}
