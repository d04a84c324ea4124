/**
 * Defaults of the caller API (cluster-client.ts); each call may pass its own
 * timeout. Apart, so the OpenClaw tools' declarations read them without
 * loading the client and libp2p.
 */
export const DEFAULT_HANDOFF_TIMEOUT_MS = 30 * 60_000
/** Above the receiver's own delivery allowance (30 s), so its answer always comes first. */
export const DEFAULT_SEND_TIMEOUT_MS = 40_000
