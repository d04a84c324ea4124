/**
 * What the bench process asks of a node host (./node-host.ts) over the IPC
 * channel, and what it answers. Plain JSON: timestamps are epoch ms
 * (Date.now()), comparable across processes on one machine.
 */

export type PathKind = 'direct' | 'relayed'

/** One clawmatrix node to start in a host. */
export interface NodeSpec {
  /** Its name; a managed node's must be the one its invite certifies. */
  nodeId: string
  /**
   * An invite token (`Authority.invite`): the host joins it into the node's
   * state directory, so the node is a member of that managed cluster with its
   * own certificate, and takes its secret from there (not from the host's
   * environment). The token is a credential: it is never logged.
   */
  invite?: string
  /** A listening node (and so a relay); otherwise dial-out only. */
  listen: boolean
  /** The configured peers (bootstrap nodes). */
  peers: Array<{ nodeId: string, url: string }>
  /** heartbeat.intervalMs, which is also the announce interval. */
  intervalMs: number
  /** heartbeat.maxMissed; the schema's default when undefined. */
  maxMissed?: number
  /** Nodes of another cluster get another secret, so the two never meet. */
  cluster?: string
  /** Watch the view until it lists this many nodes (self included), all reachable. */
  expect?: number
  /** Overrides gossipsub's IPColocationFactorWeight (peer score P6; its default is -5); 0 turns it off. */
  ipColocationWeight?: number
  /** mesh.mode: `on-demand` (the default) or `full`. */
  mode?: 'on-demand' | 'full'
}

export interface StartedNode {
  nodeId: string
  peerId: string
  /** The ws multiaddr of a listening node. */
  ws?: string
  /** When its start() resolved. */
  startedAt: number
  /** Its local HTTP endpoint (`http://127.0.0.1:<port>`), where `clawmatrix revoke --port` posts. */
  http: string
}

/**
 * What a watch waits for on each node it covers, from the moment it is armed:
 * - `card-newer`: the node holds a card of `peerId` newer than the one it held;
 * - `refuses`: the node refuses `peerId` (a revocation reached it), its view
 *   no longer lists it, and it holds no connection to it.
 */
export type WatchCondition =
  | { kind: 'card-newer', peerId: string }
  | { kind: 'refuses', peerId: string }

/** When one node of a watch first met its condition (epoch ms), or nothing if it has not (yet). */
export interface WatchRecord {
  nodeId: string
  metAt?: number
}

/**
 * When a node's view first listed every node (`knowsAllAt`) and reached them
 * all (`reachesAllAt`). Reaching depends on the mesh mode: in `full` mode a
 * connection open to every node; on demand a way to every node (its card's
 * own address, or a circuit through a relay it holds a reservation on),
 * with no connection needed until there is work.
 */
export interface ConvergenceRecord {
  nodeId: string
  listen: boolean
  startedAt: number
  knowsAllAt?: number
  reachesAllAt?: number
  /** The view at the end of the wait: nodes listed, and of those reachable (self included). */
  known: number
  reachable: number
  /** The node's open connections at the end of the wait. */
  connections: { direct: number, relayed: number }
  /** When its first connection opened (epoch ms): how long joining took before any card could move. */
  connectedAt?: number
  /** The card that completed its view (the last to arrive), and when. */
  lastArrival?: { nodeId: string, at: number }
}

/** The nodes' warnings of one kind (the message without ids and numbers): how many, and the first one. */
export interface WarningCount {
  count: number
  first: string
}

export interface ByteCount {
  sent: number
  received: number
}

/** What one node moved since the counters were last reset. */
export interface TrafficRecord {
  nodeId: string
  listen: boolean
  ms: number
  /** Payload bytes of each protocol's streams (after Noise and Yamux are removed). */
  protocols: Record<string, ByteCount>
  /** Bytes on the node's direct connections as they leave the socket (Noise, Yamux and relayed traffic included). */
  wire: ByteCount
  /** Announcements this node published, and their payload bytes. */
  published: number
  publishedBytes: number
  /** Announcements delivered to this node (each message once, duplicates not counted). */
  delivered: number
  deliveredBytes: number
  connections: { direct: number, relayed: number }
  /** Connections opened and closed in the window, relayed ones among them. */
  churn: { opened: number, closed: number, relayedOpened: number, relayedClosed: number }
}

/** An echo stream's state, as its host sees it. */
export interface StreamState {
  status: string
  readStatus: string
  writeStatus: string
  /** When the stream closed, and the error it closed with. */
  closedAt?: number
  closeError?: string
  connectionId: string
  connectionStatus: string
  /** Every connection the node has to the stream's peer right now. */
  connections: Array<{ id: string, status: string, remoteAddr: string }>
  /** Connections to that peer opened since the stream was (re)registered. */
  connectionsOpenedSince: number
}

export interface ProcessStats {
  /** User + system CPU time. */
  cpuMs: number
  /** Nodes the process hosts now. */
  nodes: number
  /** V8 heap in use after a full GC (the host runs with --expose-gc), and the resident set. */
  heapAfterGcBytes: number
  rssBytes: number
  /** Event loop lag percentiles: how late a 20 ms timer fired, ms. */
  delayP50Ms: number
  delayP99Ms: number
  delayMaxMs: number
}

export interface HostMethods {
  start: { params: { nodes: NodeSpec[] }, result: StartedNode[] }
  /** Waits until every watched node converged, or the timeout; returns what each reached. */
  waitConverged: { params: { timeoutMs: number }, result: { records: ConvergenceRecord[], warnings: WarningCount[] } }
  /** How many nodes a node's view lists, and how many of them it reaches (self included). */
  viewSize: { params: { nodeId: string }, result: { known: number, reachable: number } }
  /** CPU time and event loop delay of the host process since the last reset. */
  processStats: { params: { reset: boolean }, result: ProcessStats }
  resetTraffic: { params: Record<string, never>, result: null }
  readTraffic: { params: Record<string, never>, result: TrafficRecord[] }
  /** Registers the bulk sink protocol on a node: counts what arrives, answers the count. */
  serveSink: { params: { nodeId: string }, result: null }
  /** Moves `bytes` to `to` over the given path and waits for the sink's count. */
  sendBulk: { params: { from: string, to: string, path: PathKind, bytes: number, chunkBytes: number, timeoutMs: number }, result: { ms: number, remoteAddr: string } }
  /** Registers the echo protocol on a node; inbound echo streams are kept for later use. */
  serveEcho: { params: { nodeId: string }, result: null }
  /** Opens an echo stream from `from` to peer `to` on its connection of the given path. */
  openEcho: { params: { from: string, to: string, path: PathKind }, result: { key: string, connectionId: string, remoteAddr: string } }
  /** The key of the echo stream `nodeId` accepted from peer `remote`. */
  acceptedEcho: { params: { nodeId: string, remote: string, path: PathKind }, result: { key: string } }
  /** Writes a line on an echo stream and waits for the other end to echo it. */
  roundTrip: { params: { key: string, timeoutMs: number }, result: { ms: number } }
  streamState: { params: { key: string }, result: StreamState }
  /** Publishes a node's card now (a new seq), outside its announce period. */
  publishCard: { params: { nodeId: string }, result: null }
  /**
   * Starts timing `condition` on every node of this host but `exclude` and
   * the node the condition names (its peer id); each node's first moment is
   * recorded in the host, off its own events, so the IPC round trip is not in it.
   */
  armWatch: { params: { id: string, condition: WatchCondition, exclude?: string[] }, result: { nodes: number } }
  /** Waits until every node of a watch met its condition, or the timeout; returns the records and forgets the watch. */
  waitWatch: { params: { id: string, timeoutMs: number }, result: WatchRecord[] }
  /** Stops every node gracefully (with a deadline) and removes their state. */
  stopNodes: { params: Record<string, never>, result: null }
}

export type HostMethod = keyof HostMethods

export interface HostRequest<M extends HostMethod = HostMethod> {
  id: number
  method: M
  params: HostMethods[M]['params']
}

export type HostReply =
  | { id: number, ok: true, result: unknown }
  | { id: number, ok: false, error: string }
