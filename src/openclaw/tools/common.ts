import { leftMessage } from '../../services/shutdown.js'
import { UnknownTargetError } from '../../services/errors.js'
import { toolPolicyRefusal } from '../../services/tools/policy.js'
import { exposedError, ToolAuthorizationError } from '../errors.js'
import type { ClusterClient } from '../cluster-client.js'
import type { ClusterNode } from '../../services/cluster/cluster-view.js'
import type { MeshRuntime } from '../runtime.js'
import type { Static, TSchema } from 'typebox'

export interface TextContent {
  type: 'text'
  text: string
}

/** What an OpenClaw tool returns: text for the model, structured details for logs, UIs and callers. */
export interface ToolResult<D = Record<string, unknown>> {
  content: TextContent[]
  details: D
}

/**
 * One agent tool in the shape OpenClaw's `api.registerTool` takes. Kept
 * here so the tools build and test without OpenClaw's types; the plugin
 * entry passes them through as they are.
 */
export interface ClusterTool<S extends TSchema = TSchema> {
  name: string
  label: string
  description: string
  parameters: S
  execute(toolCallId: string, params: Static<S>, signal?: AbortSignal, onUpdate?: (partial: ToolResult) => void): Promise<ToolResult>
  /** How long OpenClaw should let a call run, from its arguments. */
  getExecutionTimeoutMs?: (args: unknown) => number | undefined
}

/** Who is calling on this gateway, passed to the remote side for its records. */
export interface ToolCaller {
  agentId?: string
  sessionKey?: string
}

/** What every tool gets: the process's mesh runtime and who is calling. */
export interface ToolScope {
  runtime: MeshRuntime
  caller: ToolCaller
}

/** The caller as the remote side records it: `agent <id>` or the session key. */
export function callerLabel (caller: ToolCaller): string | undefined {
  // the receiving node puts this node's name in front: `home/main`
  return caller.agentId ?? caller.sessionKey
}

/** Wraps a tool so its expected failures reach every caller with their message. */
export function guarded<S extends TSchema> (tool: ClusterTool<S>): ClusterTool<S> {
  return {
    ...tool,
    async execute (...args) {
      try {
        return await tool.execute(...args)
      } catch (err) {
        throw exposedError(err) ?? err
      }
    }
  }
}

export function textResult<D> (text: string, details: D): ToolResult<D> {
  return { content: [{ type: 'text', text }], details }
}

/** The caller API of the running node (or the one the runtime was given). */
export function requireClient (scope: ToolScope): ClusterClient {
  const node = scope.runtime.requireNode()
  return scope.runtime.clusterClient ?? node.client
}

/** A node of the cluster by its node id; the error lists the node ids there are. */
export function findNode (scope: ToolScope, nodeId: string): ClusterNode {
  const { view } = scope.runtime.requireNode()
  const nodes = view.nodes()
  const node = nodes.find(n => n.nodeId === nodeId.trim())
  if (node == null) {
    const leftAt = view.leftAt(nodeId.trim())
    const known = `the cluster has nodes [${nodes.map(n => n.nodeId).join(', ')}]`
    throw new UnknownTargetError('node', nodeId, leftAt == null ? known : `${leftMessage(nodeId.trim(), leftAt)}; ${known}`)
  }
  return node
}

/**
 * Refuses early when the target node's card says it does not run `tool` for
 * others. The remote node enforces its policy anyway; this only saves a
 * round trip and names the setting to change. It applies to this node too:
 * cluster tools must not be a way around its own tool proxy policy.
 */
export function checkToolAllowed (node: ClusterNode, tool: string): void {
  const refusal = toolPolicyRefusal(node.toolProxy, tool, node.nodeId)
  if (refusal != null) throw new ToolAuthorizationError(refusal.message)
}

/** Checks a target (agent id, node id or tags:...) resolves, so a typo fails with what the cluster offers. */
export function checkTarget (scope: ToolScope, target: string): void {
  scope.runtime.requireNode().view.resolve(target)
}
