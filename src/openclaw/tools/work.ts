import Type from 'typebox'
import { DEFAULT_HANDOFF_TIMEOUT_MS } from '../../services/cluster-client.js'
import { callerLabel, checkTarget, requireClient, textResult, type ClusterTool, type ToolScope } from './common.js'

const Target = Type.String({
  minLength: 1,
  description: 'Who should get it: an agent id (e.g. "coder"), a node id (e.g. "gpu-box"), or tags:<tag>[,<tag>] ' +
    '(e.g. "tags:gpu") for any agent or node carrying all those tags. cluster_peers lists what exists.'
})

export const HandoffParams = Type.Object({
  target: Target,
  task: Type.String({ minLength: 1, description: 'What the other agent should do, complete and self-contained: it does not see this conversation' }),
  context: Type.Optional(Type.String({ description: 'Background the other agent needs: relevant facts, file paths, constraints, what was tried' }))
})

export const SendParams = Type.Object({
  target: Target,
  message: Type.String({ minLength: 1, description: 'The message to deliver' })
})

/** `cluster_handoff`: a task for an agent on another gateway, answered when it is done. */
export function handoffTool (scope: ToolScope): ClusterTool<typeof HandoffParams> {
  return {
    name: 'cluster_handoff',
    label: 'Hand off a task',
    description: 'Give a task to an agent on another gateway of the clawmatrix cluster and wait for its answer. Use it when ' +
      'another agent is better placed (other tools, models, files or hardware, e.g. tags:gpu). The other agent starts ' +
      'fresh: put everything it needs in task and context. Returns its final answer.',
    parameters: HandoffParams,
    // the caller API's own deadline ends the call first
    getExecutionTimeoutMs: () => DEFAULT_HANDOFF_TIMEOUT_MS + 30_000,
    async execute (_id, params, signal, onUpdate) {
      checkTarget(scope, params.target)
      const result = await requireClient(scope).handoff(params.target, params.task, params.context, {
        signal,
        from: callerLabel(scope.caller),
        onProgress: onUpdate == null ? undefined : message => { onUpdate(textResult(message, { progress: true })) }
      })
      return textResult(`${result.agentId} on ${result.nodeId} answered:\n\n${result.reply}`, { handoffId: result.id, node: result.nodeId, agent: result.agentId })
    }
  }
}

/** `cluster_send`: a message to an agent elsewhere, without waiting for a whole task. */
export function sendTool (scope: ToolScope): ClusterTool<typeof SendParams> {
  return {
    name: 'cluster_send',
    label: 'Send a message',
    description: 'Send a message to an agent on another gateway of the clawmatrix cluster (a note, an update, a follow-up ' +
      'to an earlier hand-off). It goes into that agent\'s session; returns once the other node accepted it, without waiting for an answer.',
    parameters: SendParams,
    async execute (_id, params, signal) {
      checkTarget(scope, params.target)
      const result = await requireClient(scope).send(params.target, params.message, { signal, from: callerLabel(scope.caller) })
      const text = `delivered to ${result.agentId} on ${result.nodeId}${result.duplicate ? ' (it had arrived before; not delivered twice)' : ''}`
      return textResult(text, { messageId: result.id, node: result.nodeId, agent: result.agentId, duplicate: result.duplicate })
    }
  }
}
