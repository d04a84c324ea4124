/**
 * What the cluster tools need from the services side to send work to other
 * nodes. The plugin only calls it; the stream protocols (hand-off, send,
 * tool proxy) implement it and hand it to the plugin through
 * `MeshRuntime.clusterClient` (see ./runtime.ts). Until then every call that
 * needs it fails with ClusterClientUnavailableError.
 *
 * Targets: `target` is an agent id, a node id or `tags:<tag>[,<tag>...]`,
 * resolved by ClusterView.resolve(); `node` is a node id only. An unknown
 * target or node rejects with the services' UnknownTargetError, whose message
 * lists what the cluster offers.
 */

/** Who asked, on this gateway: passed along for the remote side's records and logs. */
export interface ClusterCaller {
  agentId?: string
  sessionKey?: string
}

export interface ClusterCallOptions {
  /** Aborting cancels the call and the work it started on the remote node. */
  signal?: AbortSignal
  /** Overall deadline for the call; the implementation applies its own default when absent. */
  timeoutMs?: number
  caller?: ClusterCaller
  /** Streamed output as it arrives (e.g. an `exec`'s stdout), for progress updates. */
  onOutput?: (channel: string, text: string) => void
}

export interface HandoffResult {
  /** The node that ran the task, and the agent on it. */
  nodeId: string
  agentId: string
  /** The agent's final answer. */
  reply: string
  /** The remote session the task ran in, for a follow-up `cluster_send`. */
  sessionKey?: string
  details?: Record<string, unknown>
}

export interface SendResult {
  nodeId: string
  agentId?: string
  /** The remote side accepted the message (it is queued or delivered into the session). */
  accepted: boolean
  /** The agent's answer, when the remote side ran a turn and waited for it. */
  reply?: string
  details?: Record<string, unknown>
}

/** The result of a tool run by the tool proxy on another node. */
export interface RemoteToolResult {
  nodeId: string
  tool: string
  /** Output by channel (`stdout`, `stderr`, `content` ...), in arrival order within a channel. */
  output: Record<string, string>
  /** Output went past the remote node's `toolProxy.maxOutputBytes` and was cut. */
  truncated: boolean
  /** The tool's structured facts: exit code, path, bytes written ... */
  details: Record<string, unknown>
}

export interface ExecRequest {
  command: string
  workdir?: string
  timeoutMs?: number
}

export interface ClusterClient {
  /** Runs `task` on the agent `target` resolves to and waits for its answer. */
  handoff(target: string, task: string, context: string | undefined, options?: ClusterCallOptions): Promise<HandoffResult>
  /** Delivers `message` to the agent (or node) `target` resolves to, without waiting for a full task. */
  send(target: string, message: string, options?: ClusterCallOptions): Promise<SendResult>
  /** `exec` through the tool proxy of `node`. */
  exec(node: string, request: ExecRequest, options?: ClusterCallOptions): Promise<RemoteToolResult>
  /** `read` through the tool proxy of `node`. */
  read(node: string, path: string, options?: ClusterCallOptions): Promise<RemoteToolResult>
  /** `write` through the tool proxy of `node`. */
  write(node: string, path: string, content: string, options?: ClusterCallOptions): Promise<RemoteToolResult>
  /** Any tool the tool proxy of `node` offers, by name. */
  tool(node: string, tool: string, args: Record<string, unknown>, options?: ClusterCallOptions): Promise<RemoteToolResult>
}

/** The node is running but the protocol a tool needs is not there (yet). */
export class ClusterClientUnavailableError extends Error {
  readonly code = 'CLUSTER_CLIENT_UNAVAILABLE'

  constructor (tool: string, what: string) {
    super(`${tool} is not available yet: this clawmatrix build has no ${what} protocol; only cluster_peers works`)
    this.name = 'ClusterClientUnavailableError'
  }
}
