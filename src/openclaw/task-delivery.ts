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

/** Sessions remembered as having no delivery channel, at most (the oldest forgotten first). */
const MAX_CHANNELLESS_SESSIONS = 1000

/**
 * Delivery through `api.runtime.subagent.run` on the owner's session key.
 * External delivery first (`deliver: true`, as for a top-level requester);
 * a session with no route to deliver to gets the turn internally. OpenClaw
 * refuses `deliver: true` for a session with no channel (webchat,
 * `/tools/invoke`: "delivery channel is required") and logs the refusal as
 * a gateway error: such a session is remembered, and its later results go
 * in internally at once, so each one logs it once, not at every task.
 */
export function announceTask (subagent: Pick<SubagentRuntime, 'run'>): (task: TaskRecord) => Promise<void> {
  const channelless = new Set<string>()
  return async task => {
    const sessionKey = task.owner.session!
    const message = taskAnnouncement(task)
    const idempotencyKey = `clawmatrix-task-${task.id}-${task.state}-${task.turns.length}`
    if (!channelless.has(sessionKey)) {
      try {
        await subagent.run({ sessionKey, message, deliver: true, idempotencyKey })
        return
      } catch (err: any) {
        if (/delivery channel is required/.test(String(err?.message))) {
          channelless.add(sessionKey)
          if (channelless.size > MAX_CHANNELLESS_SESSIONS) channelless.delete(channelless.values().next().value!)
        }
      }
    }
    await subagent.run({ sessionKey, message, deliver: false, idempotencyKey: `${idempotencyKey}-internal` })
  }
}
