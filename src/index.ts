/**
 * clawmatrix: a libp2p swarm that lets several OpenClaw gateways (or bare
 * nodes) work as one cluster. This module is the package's public face; the
 * OpenClaw plugin is `clawmatrix/openclaw`, and nothing else is reachable.
 *
 * @example
 *
 * ```TypeScript
 * import { createNode, parseConfig } from 'clawmatrix'
 *
 * const node = await createNode({
 *   config: parseConfig({ nodeId: 'office', secret: process.env.CLAWMATRIX_SECRET, listen: true }),
 *   stateDir: '/var/lib/clawmatrix/office'
 * })
 * await node.start()
 * const { reply } = await node.client.handoff('reviewer', 'review the diff in /tmp/pr.patch', undefined)
 * await node.stop()
 * ```
 *
 * `clawmatrix node` also attaches the layers built on a node, before it starts:
 * tasks that outlive a call and the A2A endpoint over them.
 *
 * ```TypeScript
 * import { attachA2A, attachTasks } from 'clawmatrix'
 *
 * const tasks = attachTasks(node, stateDir)
 * attachA2A(node, tasks)
 * await node.start()
 * const task = await tasks.submit('reviewer', 'review the diff in /tmp/pr.patch')
 * ```
 */
import { ClawmatrixNode, type ClawmatrixNodeInit } from './services/clawmatrix-node.js'

/**
 * Builds a node from a parsed config: its swarm, cluster view, work
 * protocols, model proxy and local HTTP endpoint. Nothing listens until
 * `node.start()`; a start that fails part way stops what it had started and
 * throws. `node.stop()` leaves the cluster gracefully (peers drop it at once).
 */
export async function createNode (init: ClawmatrixNodeInit): Promise<ClawmatrixNode> {
  return ClawmatrixNode.create(init)
}

export type { ClawmatrixNode, ClawmatrixNodeInit }
export type { InfoLog } from './node/logging.js'
export type { NodeStatus, PeerStatus } from './services/status.js'
export type { ClusterNode } from './services/cluster/cluster-view.js'
export { VERSION } from './version.js'

// The config: one schema (TypeBox, also JSON Schema) is the source of truth for the types and the validation.
export { parseConfig, loadConfigFile } from './config/load.js'
export { ConfigError } from './config/errors.js'
export { ConfigSchema } from './config/schema.js'
export type { Config, ConfigInput, PeerConfig, AgentConfig, ModelConfig, ToolProxyConfig } from './config/schema.js'

// The caller API, `node.client`: hand-offs, one-way messages and tool calls to other nodes.
export type { ClusterClient, CallOptions, HandoffOutcome, SendOutcome, ToolOutcome } from './services/cluster-client.js'

// What a call can throw, to be told apart by `err.name` (each also has a stable `code`).
export { RemoteWorkError, SelfTargetError, UnknownTargetError, NodeIdConflictError, NodeOfflineError, NodeUnreachableError } from './services/errors.js'
export { RefusedError, NoCandidateAcceptedError, StreamCutError, IdleTimeoutError, DeadlineError, RemoteError } from './services/wire/errors.js'
export { MembershipSetupError } from './membership/errors.js'

// Layers on a node, attached before `start` (docs/tasks.md, docs/a2a.md).
export { attachTasks } from './tasks/service.js'
export type { TaskService, TaskServiceInit } from './tasks/service.js'
export type { TaskRecord, TaskState, TaskEvent } from './tasks/task.js'
export { TaskRefusedError, UnknownTaskError } from './tasks/errors.js'
export { attachA2A } from './a2a/index.js'
export type { A2AEndpointInit } from './a2a/index.js'

// What an embedder may plug in to run work from other nodes (the OpenClaw plugin runs hand-offs as agent runs).
export type { WorkInit } from './services/work.js'
export type { AgentRunner } from './services/agents/runner.js'
export type { MessageSink } from './services/agents/message-sink.js'
export type { ModelProxyOptions } from './services/model-proxy/index.js'
