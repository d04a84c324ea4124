/**
 * The clawmatrix config schema: the single source of truth for runtime
 * validation (./load.ts), the OpenClaw manifest's `configSchema` and the
 * TypeScript types below.
 */
import Type, { type Static } from 'typebox'

export const DEFAULT_LISTEN_PORT = 19000
export const DEFAULT_PROXY_PORT = 19001
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 15_000
export const DEFAULT_HEARTBEAT_MAX_MISSED = 3
export const DEFAULT_RECONNECT_MIN_MS = 1_000
export const DEFAULT_RECONNECT_MAX_MS = 60_000
/** LiteLLM's defaults: three failures in a row cool a host down for a minute. */
export const DEFAULT_COOLDOWN_FAILURES = 3
export const DEFAULT_COOLDOWN_MS = 60_000
/**
 * Model streams kept open per host between requests, and for how long
 * (modelRouting.reuseStreams). Room for a burst: with room for 4, a burst of
 * 100 requests reopened 96 streams every time and closed them again after,
 * so it paid the 1.0.0 price plus a late close (docs/benchmarks.md). An
 * idle stream closes after DEFAULT_IDLE_STREAM_MS, so what a burst leaves
 * shrinks back by itself.
 */
export const DEFAULT_IDLE_STREAMS_PER_HOST = 128
/** The most idle streams per host a caller may keep: the model protocol's per-connection stream limit. */
export const MAX_IDLE_STREAMS_PER_HOST = 256
export const DEFAULT_IDLE_STREAM_MS = 10_000
/**
 * A model request that heard nothing from its host this long has the
 * connection under it pinged; a ping unanswered for DEFAULT_PROBE_TIMEOUT_MS
 * moves the request to the next host. Past most answers' first frame (a
 * normal request sends nothing extra), and far below the heartbeat's 45 s.
 */
export const DEFAULT_PROBE_AFTER_MS = 2_000
export const DEFAULT_PROBE_TIMEOUT_MS = 3_000
/** How long a request waits in a model's queue for a slot before it is refused as busy (429 to the client). */
export const DEFAULT_QUEUE_WAIT_MS = 30_000
export const MIN_SECRET_LENGTH = 16
/** Secrets a node accepts at once while the cluster rotates to a new one. */
export const MAX_SECRETS = 4
export const MESH_MODES = ['on-demand', 'full'] as const
export const DEFAULT_IDLE_CLOSE_MS = 60_000
export const DEFAULT_MAX_RELAYS = 2
export const DEFAULT_CARDS_PER_INTERVAL = 16

/**
 * The one pattern for node ids (and agent ids), wherever they are read: this
 * config, cards from the wire, frames, identify user agents, invites. It
 * keeps every name printable and free of separators a log or table relies on.
 */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
const NAME = new RegExp(NAME_PATTERN)
/** What NAME_PATTERN asks for, in words, for error messages. */
export const NAME_RULE = 'letters, digits, ".", "_" or "-" (at most 64, starting with a letter or digit)'
export const Name = (description?: string) => Type.String({ pattern: NAME_PATTERN, ...(description == null ? {} : { description }) })

/** True when `value` is a valid node (or agent) id; the check every reader of a name uses. */
export function isName (value: unknown): value is string {
  return typeof value === 'string' && NAME.test(value)
}

/** Free text other nodes see (model ids, tags, providers): no control characters. */
export const PRINTABLE_PATTERN = '^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]+$'

const Port = (fallback: number, description: string) =>
  Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, default: fallback, description }))
/** Who may call: node ids, `tags:<tag>` or `*`, matched against the caller's certified name (managed clusters only). */
const AllowFrom = (what: string) => Type.Optional(Type.Array(Type.String({ pattern: '^(\\*|tags:[A-Za-z0-9][A-Za-z0-9._-]{0,63}|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$' }), {
  maxItems: 256,
  description: `Managed clusters: who may ${what}: node ids, tags:<tag> or "*", checked against the caller's certificate; unset allows every member`
}))
const Strings = (description: string) => Type.Optional(Type.Array(Type.String({ minLength: 1, pattern: PRINTABLE_PATTERN }), { default: [], description }))

export const PeerSchema = Type.Object({
  nodeId: Name('The peer\'s nodeId, as set in its own config'),
  url: Type.String({ minLength: 1, description: 'ws://host:port, wss://host:port or a multiaddr such as /dns4/host/tcp/443/tls/ws' })
}, { additionalProperties: false })

export const A2AAgentSchema = Type.Object({
  url: Type.String({ pattern: '^https?://', description: 'An external A2A agent\'s JSON-RPC endpoint (A2A 1.0), called from this node for hand-offs to this agent' }),
  tokenEnv: Type.Optional(Type.String({ minLength: 1, description: 'Name of the environment variable holding the bearer token for that agent; the token never leaves this node' }))
}, { additionalProperties: false })

export const AgentSchema = Type.Object({
  id: Name('Agent id, unique in the cluster'),
  description: Type.Optional(Type.String({ default: '', description: 'What the agent does, shown to other nodes' })),
  tags: Strings('Labels a target such as tags:<tag> can select'),
  command: Type.Optional(Type.Array(Type.String({ minLength: 1 }), {
    minItems: 1,
    description: 'Standalone nodes: a command (argv) that runs the agent: the task arrives as JSON on stdin, the answer is read from stdout'
  })),
  a2a: Type.Optional(A2AAgentSchema),
  allowFrom: AllowFrom('hand tasks and messages to this agent')
}, { additionalProperties: false })

export const MODEL_DIALECTS = ['openai', 'anthropic'] as const

export const ModelSchema = Type.Object({
  id: Type.String({ minLength: 1, pattern: PRINTABLE_PATTERN, description: 'Model id as other nodes will request it' }),
  provider: Type.String({ minLength: 1, description: 'Provider that serves the model on this node' }),
  description: Type.Optional(Type.String({ description: 'Shown to other nodes' })),
  baseUrl: Type.Optional(Type.String({ minLength: 1, description: 'Upstream API base URL on this node, e.g. http://127.0.0.1:11434/v1' })),
  dialect: Type.Optional(Type.Enum([...MODEL_DIALECTS], { default: 'openai', description: 'Upstream API: OpenAI-compatible (Ollama, vLLM, LM Studio, OpenAI, OpenRouter) or Anthropic Messages' })),
  apiKeyEnv: Type.Optional(Type.String({ minLength: 1, description: 'Name of the environment variable holding the upstream key; the key never leaves this node' })),
  upstreamModel: Type.Optional(Type.String({ minLength: 1, description: 'Model name at the upstream, when it differs from id' })),
  allowFrom: AllowFrom('use this model'),
  maxConcurrent: Type.Optional(Type.Integer({ minimum: 1, description: 'Requests for this model this node serves at once (its own clients and other nodes together); more go to another host, wait in the queue (maxQueued), or are refused as busy' })),
  maxQueued: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'With maxConcurrent: requests that wait here for a slot when every host of the model is at its limit; beyond it the client gets 429 with Retry-After' })),
  queueWaitMs: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_QUEUE_WAIT_MS, description: 'How long a queued request waits for a slot before it is refused as busy (429); keep it below your clients\' timeouts' })),
  fallbacks: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 16, description: 'Other models tried, in order, when no host of this one can take a request (before its first byte)' }))
}, { additionalProperties: false })

export const ModelRoutingSchema = Type.Object({
  cooldownFailures: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_COOLDOWN_FAILURES, description: 'A model host that failed this many requests in a row is skipped for cooldownMs' })),
  cooldownMs: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_COOLDOWN_MS, description: 'How long a failing model host is skipped' })),
  reuseStreams: Type.Optional(Type.Boolean({ default: true, description: 'Keep model streams to hosts open between requests (/clawmatrix/model/1.1.0) instead of one stream per request; hosts that speak only 1.0.0 get a stream per request' })),
  idleStreamsPerHost: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_IDLE_STREAMS_PER_HOST, default: DEFAULT_IDLE_STREAMS_PER_HOST, description: 'With reuseStreams: idle model streams kept open per host' })),
  idleStreamMs: Type.Optional(Type.Integer({ minimum: 100, default: DEFAULT_IDLE_STREAM_MS, description: 'With reuseStreams: an idle model stream is closed after this long' })),
  probeAfterMs: Type.Optional(Type.Integer({ minimum: 100, default: DEFAULT_PROBE_AFTER_MS, description: 'A request that heard nothing from its model host this long has the connection to the host pinged (once)' })),
  probeTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, default: DEFAULT_PROBE_TIMEOUT_MS, description: 'A host whose connection answers that ping within this long is slow and waited for; otherwise it is silent (frozen, or its network drops packets) and the request moves to the next host' }))
}, { additionalProperties: false })

export const ToolProxySchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ default: false, description: 'Serve tool calls from other nodes' })),
  allow: Strings('Tools other nodes may run; [] or ["*"] allow all'),
  deny: Strings('Tools other nodes may never run; deny wins over allow'),
  maxOutputBytes: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_MAX_OUTPUT_BYTES, description: 'Tool output beyond this is cut with a marker' })),
  workdir: Type.Optional(Type.String({ minLength: 1, description: 'Working directory for relative paths and exec; defaults to the process working directory' })),
  allowFrom: AllowFrom('run tools here')
}, { additionalProperties: false })

export const HeartbeatSchema = Type.Object({
  intervalMs: Type.Optional(Type.Integer({ minimum: 100, default: DEFAULT_HEARTBEAT_INTERVAL_MS, description: 'How often each connected peer is pinged' })),
  maxMissed: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_HEARTBEAT_MAX_MISSED, description: 'Missed beats before the peer is disconnected' }))
}, { additionalProperties: false })

export const ReconnectSchema = Type.Object({
  minDelayMs: Type.Optional(Type.Integer({ minimum: 10, default: DEFAULT_RECONNECT_MIN_MS, description: 'First retry delay for a configured peer' })),
  maxDelayMs: Type.Optional(Type.Integer({ minimum: 10, default: DEFAULT_RECONNECT_MAX_MS, description: 'Largest retry delay' }))
}, { additionalProperties: false })

export const DEFAULT_UPGRADES_PER_IP_PER_MINUTE = 600
export const DEFAULT_PENDING_HANDSHAKES_PER_IP = 32

export const LimitsSchema = Type.Object({
  upgradesPerIpPerMinute: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_UPGRADES_PER_IP_PER_MINUTE, description: 'Inbound WebSocket connections one IP address may open per minute; more are dropped before the Noise handshake, with a log line' })),
  pendingHandshakesPerIp: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_PENDING_HANDSHAKES_PER_IP, description: 'Inbound connections from one IP address that may be in their handshake at once; more are dropped, with a log line' })),
  relayedBytesPerMemberPerMinute: Type.Optional(Type.Integer({ minimum: 1024, description: 'A listening node (relay): bytes one member may send through its circuits per minute; past it that member\'s circuits are cut until the minute is over, with a log line. Unset: no cap' }))
}, { additionalProperties: false })

export const MeshSchema = Type.Object({
  mode: Type.Optional(Type.Enum([...MESH_MODES], {
    default: 'on-demand',
    description: 'on-demand: stay connected to configured peers and relays only, learn the other members by gossip and connect to one when there is work for it; full: connect to every member (the old behaviour, for small clusters)'
  })),
  idleCloseMs: Type.Optional(Type.Integer({ minimum: 100, default: DEFAULT_IDLE_CLOSE_MS, description: 'An on-demand connection with no work for this long is closed' })),
  relays: Type.Optional(Type.Integer({ minimum: 0, maximum: 8, default: DEFAULT_MAX_RELAYS, description: 'Relays a node that does not listen holds reservations on (as many as it knows, up to this)' })),
  cardsPerInterval: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_CARDS_PER_INTERVAL, description: 'Unchanged cards the whole cluster re-announces per heartbeat.intervalMs, at most: up to this many members each re-announces every interval; beyond, each waits members / cardsPerInterval intervals, so what a relay forwards grows with the members, not their square. A changed card goes out at once; peers expire a card after three of its own periods' }))
}, { additionalProperties: false })

export const TlsSchema = Type.Object({
  certFile: Type.String({ minLength: 1, description: 'PEM certificate chain for serving wss directly' }),
  keyFile: Type.String({ minLength: 1, description: 'PEM private key for serving wss directly' })
}, { additionalProperties: false })

export const ConfigSchema = Type.Object({
  nodeId: Name('This node\'s name in the cluster'),
  // Optional in the schema only so that OpenClaw accepts the config of a gateway that joined with an invite;
  // parseConfig (./load.ts) requires it once the joined state was merged in.
  secret: Type.Optional(Type.String({ minLength: MIN_SECRET_LENGTH, description: 'Shared cluster secret; never sent over the wire. Required, unless this node joined a managed cluster with `clawmatrix join` (its state directory then holds it)' })),
  secrets: Type.Optional(Type.Array(Type.String({ minLength: MIN_SECRET_LENGTH }), {
    minItems: 1,
    maxItems: MAX_SECRETS,
    description: 'Instead of `secret`, while replacing it: every cluster secret this node accepts, newest first. It accepts connections under any of them and dials with the first the peer also holds (docs/gate.md, "Rotating the secret")'
  })),
  authority: Type.Optional(Type.String({ pattern: '^ed25519:[A-Za-z0-9_-]{43}$', description: 'Managed cluster: the authority\'s public key (from `clawmatrix init`); every peer must then hold a certificate it signed. A joined state directory provides it' })),
  listen: Type.Optional(Type.Boolean({ default: false, description: 'Accept inbound WebSocket connections' })),
  listenHost: Type.Optional(Type.String({ minLength: 1, default: '0.0.0.0', description: 'Interface to listen on' })),
  listenPort: Port(DEFAULT_LISTEN_PORT, 'WebSocket listen port (0 picks a free one)'),
  tls: Type.Optional(TlsSchema),
  announceAddresses: Strings('Public addresses to announce instead of the listen address (e.g. behind a TLS proxy)'),
  peers: Type.Optional(Type.Array(PeerSchema, { default: [], description: 'Peers to dial at start and keep connected' })),
  agents: Type.Optional(Type.Array(AgentSchema, { default: [], description: 'Agents this node offers' })),
  models: Type.Optional(Type.Array(ModelSchema, { default: [], description: 'Models this node offers' })),
  tags: Strings('Labels of this node'),
  proxyHost: Type.Optional(Type.String({ minLength: 1, default: '127.0.0.1', description: 'Interface of the local HTTP endpoint' })),
  proxyPort: Port(DEFAULT_PROXY_PORT, 'Local HTTP endpoint: status, and the OpenAI-compatible model proxy'),
  proxyToken: Type.Optional(Type.String({ minLength: 1, description: 'Bearer token clients of the model proxy must send (Authorization: Bearer <token>); set it when proxyHost is not loopback' })),
  toolProxy: Type.Optional(ToolProxySchema),
  modelRouting: Type.Optional(ModelRoutingSchema),
  heartbeat: Type.Optional(HeartbeatSchema),
  reconnect: Type.Optional(ReconnectSchema),
  limits: Type.Optional(LimitsSchema),
  mesh: Type.Optional(MeshSchema)
}, { additionalProperties: false })

export type ConfigInput = Static<typeof ConfigSchema>

/** Makes the keys that carry a schema default required, one level deep. */
type Resolved<T> = { [K in keyof T]-?: Exclude<T[K], undefined> }

export type PeerConfig = Static<typeof PeerSchema>
export type A2AAgentConfig = Static<typeof A2AAgentSchema>
export type AgentConfig = Resolved<Omit<Static<typeof AgentSchema>, 'command' | 'a2a' | 'allowFrom'>> & { command?: string[], a2a?: A2AAgentConfig, allowFrom?: string[] }
export type ModelDialect = typeof MODEL_DIALECTS[number]
export type ModelConfig = Omit<Static<typeof ModelSchema>, 'dialect'> & { dialect: ModelDialect }
export type ToolProxyConfig = Resolved<Omit<Static<typeof ToolProxySchema>, 'workdir' | 'allowFrom'>> & { workdir?: string, allowFrom?: string[] }
export type TlsConfig = Static<typeof TlsSchema>
export type MeshMode = typeof MESH_MODES[number]
export type MeshConfig = Omit<Resolved<Static<typeof MeshSchema>>, 'mode'> & { mode: MeshMode }

/** A validated config with every default filled in. */
export interface Config extends Omit<Resolved<ConfigInput>, 'secret' | 'secrets' | 'tls' | 'proxyToken' | 'authority' | 'agents' | 'models' | 'toolProxy' | 'modelRouting' | 'heartbeat' | 'reconnect' | 'limits' | 'mesh'> {
  /** One of the two is set (parseConfig checks); read them through clusterSecrets(). */
  secret?: string
  secrets?: string[]
  tls?: TlsConfig
  proxyToken?: string
  authority?: string
  agents: AgentConfig[]
  models: ModelConfig[]
  toolProxy: ToolProxyConfig
  modelRouting: Resolved<Static<typeof ModelRoutingSchema>>
  heartbeat: Resolved<Static<typeof HeartbeatSchema>>
  reconnect: Resolved<Static<typeof ReconnectSchema>>
  limits: Resolved<Omit<Static<typeof LimitsSchema>, 'relayedBytesPerMemberPerMinute'>> & { relayedBytesPerMemberPerMinute?: number }
  mesh: MeshConfig
}

/** The cluster secrets a config holds, newest first: `secrets`, or the one `secret`. */
export function clusterSecrets (config: Pick<ConfigInput, 'secret' | 'secrets'>): string[] {
  return config.secrets ?? (config.secret == null ? [] : [config.secret])
}
