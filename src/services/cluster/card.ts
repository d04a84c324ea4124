import Type, { type Static } from 'typebox'
import { Value } from 'typebox/value'

/**
 * What a node announces about itself on the announcement topic. Cards travel
 * in gossipsub messages signed with the sender's peer key; a card is only
 * believed when its `peerId` is the message's signer (see ./announcer.ts).
 */
export const ANNOUNCE_TOPIC = '/clawmatrix/announce/1.0.0'
export const CARD_VERSION = 1
export const MAX_CARD_BYTES = 64 * 1024

const Id = Type.String({ minLength: 1, maxLength: 256 })
const Ids = Type.Array(Id, { maxItems: 256 })
const Addresses = Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { maxItems: 64 })

export const LinkSchema = Type.Object({
  peerId: Id,
  /** Addresses the announcing node knows for that peer; a hint for dialing, checked by Noise on dial. */
  addresses: Addresses,
  relayed: Type.Boolean()
})

export const CardSchema = Type.Object({
  v: Type.Literal(CARD_VERSION),
  kind: Type.Literal('card'),
  nodeId: Id,
  peerId: Id,
  version: Type.String({ maxLength: 64 }),
  /** Grows with every card, across restarts too; older cards are replays. */
  seq: Type.Integer({ minimum: 0 }),
  /** The sender re-announces this often; it expires after three silent periods. */
  intervalMs: Type.Integer({ minimum: 100 }),
  addresses: Addresses,
  agents: Type.Array(Type.Object({ id: Id, description: Type.String({ maxLength: 4096 }), tags: Ids }), { maxItems: 256 }),
  models: Type.Array(Type.Object({
    id: Id,
    provider: Type.String({ maxLength: 256 }),
    description: Type.Optional(Type.String({ maxLength: 4096 })),
    /** Requests the node serves at once for this model; callers route around a host they know is full. */
    maxConcurrent: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Models to try when no host of this one can take a request. */
    fallbacks: Type.Optional(Type.Array(Id, { maxItems: 16 }))
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
  peerId: Id,
  seq: Type.Integer({ minimum: 0 }),
  gonePeerId: Id
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
  const schema = json?.kind === 'gone' ? GoneSchema : CardSchema
  if (!Value.Check(schema, json)) {
    const first = Value.Errors(schema, json)[0]
    throw new Error(`malformed ${json?.kind ?? 'announcement'}: ${first?.instancePath || '/'} ${first?.message ?? ''}`.trim())
  }
  return json
}
