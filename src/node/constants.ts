/** Timeouts and limits of the swarm, chosen from what was measured (../shared notes, docs/). */

/**
 * A stalled handshake frees its pending-connection slot after this (a wrong
 * secret fails at once, in Noise's first round trip). It was 2 s: with 30
 * members dialing two relays at once on a loaded machine (load 12) the
 * relays cut most honest handshakes at 2 s (53 dials failed with
 * `Unexpected EOF`) and retried members crowded in again. What one address
 * can hold is bounded by the per-IP limits of ./inbound-admission.ts.
 */
export const INBOUND_UPGRADE_TIMEOUT_MS = 10_000
/** Handshakes in flight at once; wrong-secret dialers must not starve members. */
export const MAX_INCOMING_PENDING_CONNECTIONS = 256
/** Inbound dials per second per IP before libp2p refuses; NAT'd offices share one IP. */
export const INBOUND_CONNECTION_THRESHOLD = 100
export const DIAL_TIMEOUT_MS = 10_000
/**
 * Yamux stream window. Reading does not slow the sender in libp2p 3; with the
 * 16 MiB default a paused stream overflows the 4 MiB read buffer and aborts.
 */
export const MAX_STREAM_WINDOW_BYTES = 4_000_000
/** Relayed connections between members carry work, so they get no data or time limit. */
export const MAX_RELAY_RESERVATIONS = 1024

/** Relayed connections one member may hold through one relay (HOP streams per connection). */
export const MAX_RELAYED_CONNECTIONS_PER_PEER = 1024

/**
 * How long gossipsub remembers the score of a peer that disconnected (its
 * default is an hour, one record for every peer met in that hour). Scores
 * here carry only behaviour penalties; a member that reconnects within this
 * time keeps its own.
 */
export const GOSSIP_SCORE_RETAIN_MS = 10_000

/**
 * gossipsub sends IDONTWANT for messages at least this large. The only
 * messages are cards (at most 64 KiB, services/cluster/card.ts), so none:
 * a card is ~1 KiB, and at that size an IDONTWANT costs a node what the
 * duplicate it prevents would (a Noise message, a WebSocket frame, a write
 * each). On demand it prevents none: a relay forwarded each card to every
 * member, and told every member but the sender, in a second message, that
 * it already had it. Members reach each other through relays, so no member
 * would have sent that card to the relay anyway.
 */
export const GOSSIP_IDONTWANT_MIN_BYTES = 64 * 1024 + 1

/** gossipsub's Dhi when connections are made on demand: a relay keeps every member that grafts it. */
export const UNBOUNDED_GOSSIP_MESH = 100_000

/**
 * Streams a peer may open on a new connection before this side has set it up.
 * Connections are made on demand, so a burst of requests (20 model streams at
 * once) opens its streams on a connection seconds old; past the default of 10
 * libp2p aborts the whole connection and every request on it fails.
 */
export const MAX_EARLY_STREAMS = 256
