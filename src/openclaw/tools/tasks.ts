import Type from 'typebox'
import { textResult, type ClusterTool, type ToolResult, type ToolScope } from './common.js'
import { ToolInputError } from '../errors.js'
import { settledResult } from './work.js'
import type { TaskRecord } from '../../tasks/task.js'

export const TaskParams = Type.Object({
  action: Type.Union([Type.Literal('status'), Type.Literal('list'), Type.Literal('message'), Type.Literal('cancel')], {
    description: 'status: a task\'s state, progress and result; list: the tasks this session started; message: answer a task ' +
      'that asks something (it resumes), or follow up a finished one in its conversation; cancel: stop a task'
  }),
  id: Type.Optional(Type.String({ minLength: 1, description: 'The task id (from cluster_handoff); needed for status, message and cancel' })),
  message: Type.Optional(Type.String({ minLength: 1, description: 'For action message: the answer or follow-up' }))
})

/** `cluster_task`: the tasks this gateway handed off, read, answered, followed up and cancelled. */
export function taskTool (scope: ToolScope): ClusterTool<typeof TaskParams> {
  return {
    name: 'cluster_task',
    label: 'Follow a handed-off task',
    description: 'Check on tasks handed off with cluster_handoff: read a task\'s state, progress and result (status), list ' +
      'this session\'s tasks (list), answer a task that asks a question or follow up a finished one (message), or cancel ' +
      'one (cancel; says plainly when the remote run cannot be stopped).',
    parameters: TaskParams,
    async execute (_id, params, signal, onUpdate) {
      const tasks = scope.runtime.requireTasks()
      if (params.action === 'list') {
        const list = tasks.list(scope.caller.sessionKey)
        const text = list.length === 0 ? 'no tasks handed off from this session' : list.map(t => `${t.id} ${t.state} ${t.agent}@${t.node}: ${oneLine(t.task)}`).join('\n')
        return textResult(text, { tasks: list.map(t => ({ id: t.id, contextId: t.contextId, state: t.state, agent: t.agent, node: t.node })) })
      }
      if (params.id == null) throw new ToolInputError(`cluster_task ${params.action} needs the task id`)
      switch (params.action) {
        case 'status': {
          await tasks.refresh(params.id, signal).catch(() => {})
          const task = tasks.get(params.id)
          for (const p of task.progress.slice(-5)) onUpdate?.(textResult(p.message, { progress: true, taskId: task.id }))
          return statusResult(task)
        }
        case 'message': {
          if (params.message == null) throw new ToolInputError('cluster_task message needs the message')
          const before = tasks.get(params.id)
          const task = await tasks.message(params.id, params.message, signal)
          const how = task.id === before.id ? `task ${task.id} resumed with your answer` : `task ${before.id} had ended: your message is task ${task.id} in the same conversation`
          return textResult(`${how}; ${task.agent} on ${task.node} is ${task.state}. The answer will be delivered into this session.`, { taskId: task.id, contextId: task.contextId, state: task.state })
        }
        case 'cancel': {
          const { record, stopped } = await tasks.cancel(params.id, signal)
          return textResult(`task ${record.id} ${record.state}${record.note == null ? '' : `: ${record.note}`}`, { taskId: record.id, state: record.state, stopped })
        }
      }
      throw new ToolInputError(`unknown action "${String(params.action)}"`)
    }
  }
}

function statusResult (task: TaskRecord): ToolResult {
  if (task.state === 'submitted' || task.state === 'working') {
    const last = task.progress.at(-1)
    return textResult(`task ${task.id} is ${task.state} on ${task.agent}@${task.node}${last == null ? '' : `; latest progress: ${last.message}`}`,
      { taskId: task.id, contextId: task.contextId, state: task.state, node: task.node, agent: task.agent, progress: task.progress })
  }
  try {
    return settledResult(task)
  } catch (err: any) {
    return textResult(err.message, { taskId: task.id, contextId: task.contextId, state: task.state, error: task.error })
  }
}

function oneLine (text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > 80 ? `${flat.slice(0, 79)}…` : flat
}
