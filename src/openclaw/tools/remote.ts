import Type from 'typebox'
import { callerLabel, checkToolAllowed, findNode, requireClient, textResult, type ClusterTool, type ToolResult, type ToolScope } from './common.js'
import type { CallOptions, ToolOutcome } from '../cluster-client.js'

/** `exec` runs for up to 30 minutes unless the call asks otherwise. */
export const DEFAULT_EXEC_TIMEOUT_S = 1800
/** Room for the result to travel back after the remote timeout fired. */
const RESULT_GRACE_MS = 30_000

const Node = Type.String({ minLength: 1, description: 'Node id of the gateway to run on (see cluster_peers; not an agent id or tags:)' })

export const ExecParams = Type.Object({
  node: Node,
  command: Type.String({ minLength: 1, description: 'Shell command, run with /bin/sh -c on that node' }),
  workdir: Type.Optional(Type.String({ minLength: 1, description: 'Working directory on that node; relative paths start at its tool directory' })),
  timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, default: DEFAULT_EXEC_TIMEOUT_S, description: `Seconds before the command is killed (default ${DEFAULT_EXEC_TIMEOUT_S})` }))
})

export const ReadParams = Type.Object({
  node: Node,
  path: Type.String({ minLength: 1, description: 'File to read on that node; relative paths start at its tool directory' })
})

export const WriteParams = Type.Object({
  node: Node,
  path: Type.String({ minLength: 1, description: 'File to write on that node (replaced or created, with missing folders); relative paths start at its tool directory' }),
  content: Type.String({ description: 'The whole new content of the file (UTF-8)' })
})

export const RemoteToolParams = Type.Object({
  node: Node,
  tool: Type.String({ minLength: 1, description: 'Name of a tool that node runs for others (cluster_peers shows which)' }),
  args: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { default: {}, description: 'The tool\'s arguments, as a JSON object' }))
})

/** `cluster_exec`: a shell command on another node, through its tool proxy. */
export function execTool (scope: ToolScope): ClusterTool<typeof ExecParams> {
  return {
    name: 'cluster_exec',
    label: 'Run a command on a node',
    description: 'Run a shell command on another gateway\'s machine in the clawmatrix cluster, within what that node allows ' +
      '(its tool proxy must offer exec). Returns stdout, stderr and the exit code; output beyond the node\'s limit is cut ' +
      'with a marker. Use it for work that must happen on that machine (its files, hardware or network).',
    parameters: ExecParams,
    getExecutionTimeoutMs: args => timeoutSeconds(args) * 1000 + RESULT_GRACE_MS,
    async execute (_id, params, signal, onUpdate) {
      checkToolAllowed(findNode(scope, params.node), 'exec')
      const timeoutMs = (params.timeout ?? DEFAULT_EXEC_TIMEOUT_S) * 1000
      const request = params.workdir == null ? { command: params.command } : { command: params.command, workdir: params.workdir }
      return remoteResult(await requireClient(scope).exec(params.node, request, { ...callOptions(scope, signal, onUpdate), timeoutMs }))
    }
  }
}

/** `cluster_read`: a text file on another node. */
export function readTool (scope: ToolScope): ClusterTool<typeof ReadParams> {
  return {
    name: 'cluster_read',
    label: 'Read a file on a node',
    description: 'Read a text file on another gateway\'s machine in the clawmatrix cluster (its tool proxy must offer read). ' +
      'Returns the file\'s text; a file beyond the node\'s output limit is cut with a marker.',
    parameters: ReadParams,
    async execute (_id, params, signal, onUpdate) {
      checkToolAllowed(findNode(scope, params.node), 'read')
      return remoteResult(await requireClient(scope).read(params.node, params.path, {}, callOptions(scope, signal, onUpdate)))
    }
  }
}

/** `cluster_write`: replaces or creates a file on another node. */
export function writeTool (scope: ToolScope): ClusterTool<typeof WriteParams> {
  return {
    name: 'cluster_write',
    label: 'Write a file on a node',
    description: 'Write a text file on another gateway\'s machine in the clawmatrix cluster, replacing it or creating it ' +
      'with missing folders (its tool proxy must offer write). Give the complete new content.',
    parameters: WriteParams,
    async execute (_id, params, signal, onUpdate) {
      checkToolAllowed(findNode(scope, params.node), 'write')
      return remoteResult(await requireClient(scope).write(params.node, params.path, params.content, callOptions(scope, signal, onUpdate)))
    }
  }
}

/** `cluster_tool`: any tool a node's tool proxy offers, by name. */
export function remoteTool (scope: ToolScope): ClusterTool<typeof RemoteToolParams> {
  return {
    name: 'cluster_tool',
    label: 'Run a tool on a node',
    description: 'Run a named tool on another gateway of the clawmatrix cluster, through its tool proxy (for exec, read and ' +
      'write prefer cluster_exec, cluster_read and cluster_write). cluster_peers shows which tools each node allows.',
    parameters: RemoteToolParams,
    async execute (_id, params, signal, onUpdate) {
      checkToolAllowed(findNode(scope, params.node), params.tool)
      return remoteResult(await requireClient(scope).tool(params.node, params.tool, params.args ?? {}, callOptions(scope, signal, onUpdate)))
    }
  }
}

function timeoutSeconds (args: unknown): number {
  const timeout = (args as { timeout?: unknown } | undefined)?.timeout
  return typeof timeout === 'number' && timeout > 0 ? timeout : DEFAULT_EXEC_TIMEOUT_S
}

function callOptions (scope: ToolScope, signal: AbortSignal | undefined, onUpdate: ((partial: ToolResult) => void) | undefined): CallOptions {
  return {
    signal,
    from: callerLabel(scope.caller),
    onOutput: onUpdate == null ? undefined : (channel, text) => { onUpdate(textResult(text, { channel })) }
  }
}

/**
 * The model sees the output by channel and how the run ended; `details`
 * keeps the remote tool's facts (exitCode among them, which OpenClaw uses
 * to grade the call).
 */
export function remoteResult (result: ToolOutcome): ToolResult {
  const channels = Object.entries(result.output).filter(([, text]) => text !== '')
  const parts = channels.length === 1 && channels[0]![0] === 'content'
    ? [channels[0]![1]]
    : channels.map(([channel, text]) => `--- ${channel} ---\n${text}`)
  const facts = Object.entries(result.details)
    .filter(([, value]) => value != null && typeof value !== 'object')
    .map(([key, value]) => `${key}: ${String(value)}`)
  const header = `${result.tool} on ${result.nodeId}${facts.length > 0 ? ` (${facts.join(', ')})` : ''}`
  const body = parts.length > 0 ? parts.join('\n') : '(no output)'
  const truncated = result.truncated != null && result.truncated !== false
  const cut = truncated ? '\n[output cut: it went past the node\'s toolProxy.maxOutputBytes]' : ''
  return textResult(`${header}\n${body}${cut}`, { callId: result.id, node: result.nodeId, tool: result.tool, truncated, ...result.details })
}
