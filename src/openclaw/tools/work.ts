import Type from 'typebox'
import { checkTarget, requireClient, textResult, type ClusterTool, type ToolScope } from './common.js'

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
    async execute (_id, params, signal) {
      checkTarget(scope, params.target)
      const client = requireClient(scope, 'cluster_handoff', 'hand-off')
      const result = await client.handoff(params.target, params.task, params.context, { signal, caller: scope.caller })
      return textResult(`${result.agentId} on ${result.nodeId} answered:\n\n${result.reply}`, { node: result.nodeId, agent: result.agentId, sessionKey: result.sessionKey, ...result.details })
    }
  }
}

/** `cluster_send`: a message to an agent elsewhere, without waiting for a whole task. */
export function sendTool (scope: ToolScope): ClusterTool<typeof SendParams> {
  return {
    name: 'cluster_send',
    label: 'Send a message',
    description: 'Send a message to an agent on another gateway of the clawmatrix cluster (a note, an update, a follow-up ' +
      'to an earlier hand-off). Returns once the other side accepted it, with its reply when it gave one.',
    parameters: SendParams,
    async execute (_id, params, signal) {
      checkTarget(scope, params.target)
      const client = requireClient(scope, 'cluster_send', 'send')
      const result = await client.send(params.target, params.message, { signal, caller: scope.caller })
      const to = result.agentId == null ? result.nodeId : `${result.agentId} on ${result.nodeId}`
      const text = result.reply == null ? `delivered to ${to}` : `delivered to ${to}; reply:\n\n${result.reply}`
      return textResult(text, { node: result.nodeId, agent: result.agentId, accepted: result.accepted, ...result.details })
    }
  }
}
