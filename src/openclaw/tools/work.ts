import Type from 'typebox'
import { DEFAULT_HANDOFF_TIMEOUT_MS } from '../../services/call-defaults.js'
import { RemoteWorkError } from '../../services/errors.js'
import { callerLabel, checkTarget, requireClient, textResult, type ClusterTool, type ToolResult, type ToolScope } from './common.js'
import { ToolInputError } from '../errors.js'
import type { TaskRecord } from '../../tasks/task.js'

const Target = Type.String({
  minLength: 1,
  description: 'Who should get it: an agent id (e.g. "coder"), a node id (e.g. "gpu-box"), or tags:<tag>[,<tag>] ' +
    '(e.g. "tags:gpu") for any agent or node carrying all those tags. cluster_peers lists what exists.'
})

export const HandoffParams = Type.Object({
  target: Type.Optional(Target),
  task: Type.String({ minLength: 1, description: 'What the other agent should do, complete and self-contained: it does not see this conversation' }),
  context: Type.Optional(Type.String({ description: 'Background the other agent needs: relevant facts, file paths, constraints, what was tried' })),
  wait: Type.Optional(Type.Boolean({
    default: true,
    description: 'true (default): wait for the answer. false: return the task id at once; the answer is delivered into this session when the task ends (check it any time with cluster_task)'
  })),
  contextId: Type.Optional(Type.String({
    minLength: 1,
    description: 'Continue an earlier hand-off\'s conversation: the contextId it returned. The task goes to the same agent on the same node, which sees the earlier turns; target may then be left out'
  }))
})

export const SendParams = Type.Object({
  target: Target,
  message: Type.String({ minLength: 1, description: 'The message to deliver' })
})

/**
 * `cluster_handoff`: a task for an agent on another gateway, as a task of
 * the task layer (docs/tasks.md): waited for (the default) or answered later
 * into this session (`wait: false`); `contextId` continues a conversation.
 */
export function handoffTool (scope: ToolScope): ClusterTool<typeof HandoffParams> {
  return {
    name: 'cluster_handoff',
    label: 'Hand off a task',
    description: 'Give a task to an agent on another gateway of the clawmatrix cluster. Use it when another agent is ' +
      'better placed (other tools, models, files or hardware, e.g. tags:gpu). The other agent starts fresh: put everything ' +
      'it needs in task and context, or pass the contextId of an earlier hand-off to continue that conversation. By default ' +
      'waits and returns its answer; with wait=false returns a task id at once and the answer arrives in this session later.',
    parameters: HandoffParams,
    // the wait below ends the call first
    getExecutionTimeoutMs: () => DEFAULT_HANDOFF_TIMEOUT_MS + 30_000,
    async execute (_id, params, signal, onUpdate) {
      if (params.target == null && params.contextId == null) throw new ToolInputError('cluster_handoff needs a target, or the contextId of an earlier hand-off to continue')
      if (params.contextId == null) checkTarget(scope, params.target!)
      const tasks = scope.runtime.requireTasks()
      const wait = params.wait !== false
      const task = await tasks.submit(params.target, params.task, {
        context: params.context,
        contextId: params.contextId,
        timeoutMs: DEFAULT_HANDOFF_TIMEOUT_MS,
        session: scope.caller.sessionKey,
        announce: !wait,
        signal
      })
      const details = { taskId: task.id, contextId: task.contextId, node: task.node, agent: task.agent }
      if (!wait) {
        const announced = scope.caller.sessionKey == null ? 'check it with cluster_task' : 'its answer will be delivered into this session when it ends; cluster_task shows it any time'
        return textResult(`task ${task.id} handed to ${task.agent} on ${task.node} (contextId ${task.contextId}); ${announced}`, { ...details, state: task.state })
      }
      const stopProgress = onUpdate == null ? () => {} : tasks.follow(task.id, event => {
        if (event.type === 'progress') onUpdate(textResult(event.message, { progress: true, taskId: task.id }))
      })
      let settled
      try {
        settled = await tasks.untilSettled(task.id, signal)
      } catch (err) {
        if (signal?.aborted === true) {
          // The caller gave up: stop the remote work too, or learn that it cannot be stopped.
          await tasks.cancel(task.id).catch(() => {})
        }
        throw err
      } finally {
        stopProgress()
      }
      // Nobody waits any more: what the task does after this (an answered question's result) comes into the session.
      if (settled.state === 'input-required') await tasks.setAnnounce(task.id, true)
      return settledResult(settled)
    }
  }
}

/** What a hand-off that stopped working tells the model; a failure throws with the reason. */
export function settledResult (task: TaskRecord): ToolResult {
  const details = { taskId: task.id, contextId: task.contextId, node: task.node, agent: task.agent, state: task.state }
  switch (task.state) {
    case 'completed':
      return textResult(`${task.agent} on ${task.node} answered:\n\n${task.result ?? ''}\n\n(contextId ${task.contextId}: pass it to cluster_handoff to continue this conversation)`, details)
    case 'input-required':
      return textResult(`${task.agent} on ${task.node} asks: ${task.question ?? ''}\n\nAnswer with cluster_task (action "message", id "${task.id}"); the task resumes with your answer.`, details)
    case 'canceled':
      return textResult(`task ${task.id} was canceled${task.note == null ? '' : `: ${task.note}`}`, details)
    default:
      throw new RemoteWorkError(task.error?.code ?? task.state, `hand-off to agent "${task.agent}" on ${task.node} ${task.state}: ${task.error?.message ?? 'no reason given'}`, task.node)
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
