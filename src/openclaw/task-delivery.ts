/**
 * A task started from an OpenClaw session with `wait: false` comes back
 * into that session when it ends (or asks something), the way OpenClaw
 * announces a finished sub-agent to a top-level requester: a follow-up
 * agent turn in the requester session carrying the result.
 */
import type { SubagentRuntime } from './host.js'
import type { TaskRecord } from '../tasks/task.js'

/** The announcement the calling session gets. */
export function taskAnnouncement (task: TaskRecord): string {
  const head = `[clawmatrix task ${task.id} ${task.state}: agent ${task.agent} on ${task.node}; contextId ${task.contextId}]`
  switch (task.state) {
    case 'completed':
      return `${head}\n${task.result ?? ''}`
    case 'input-required':
      return `${head}\nThe agent asks: ${task.question ?? ''}\nAnswer with cluster_task (action "message", id "${task.id}").`
    case 'failed':
      return `${head}\nThe task failed: ${task.error?.message ?? 'no reason given'}`
    case 'canceled':
      return `${head}\nThe task was canceled${task.note == null ? '' : `: ${task.note}`}`
    default:
      return `${head}\nThe task is ${task.state}.`
  }
}

/**
 * Delivery through `api.runtime.subagent.run` on the owner's session key.
 * External delivery first (`deliver: true`, as for a top-level requester);
 * a session with no route to deliver to gets the turn internally.
 */
export function announceTask (subagent: Pick<SubagentRuntime, 'run'>): (task: TaskRecord) => Promise<void> {
  return async task => {
    const sessionKey = task.owner.session!
    const message = taskAnnouncement(task)
    const idempotencyKey = `clawmatrix-task-${task.id}-${task.state}-${task.turns.length}`
    try {
      await subagent.run({ sessionKey, message, deliver: true, idempotencyKey })
    } catch {
      await subagent.run({ sessionKey, message, deliver: false, idempotencyKey: `${idempotencyKey}-internal` })
    }
  }
}
