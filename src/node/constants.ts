/** Timeouts and limits of the swarm, chosen from what was measured (../shared notes, docs/). */

/** A failed or stalled handshake frees its pending-connection slot after this. */
export const INBOUND_UPGRADE_TIMEOUT_MS = 2_000
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
