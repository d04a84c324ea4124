/**
 * clawmatrix tasks (src/tasks) as A2A sees them. The states are the same;
 * the conversation's turns become the task's history, the answer its one
 * artifact, a question or an error its status message.
 */
import { agentMessage, userMessage, wireState, type A2AMessage, type A2AStreamEvent, type A2ATask, type A2ATaskStatus } from '../services/a2a/wire.js'
import type { TaskRecord } from '../tasks/task.js'

/** The answer's artifact id: one per task, so a client that appends gets it once. */
const ANSWER_ARTIFACT = 'answer'

export function a2aTask (record: TaskRecord, historyLength?: number): A2ATask {
  const ids = { taskId: record.id, contextId: record.contextId }
  const history: A2AMessage[] = [userMessage(record.task, ids), ...record.turns.map(turn => turn.role === 'user' ? userMessage(turn.text, ids) : agentMessage(turn.text, ids))]
  return {
    id: record.id,
    contextId: record.contextId,
    status: a2aStatus(record),
    artifacts: record.state === 'completed' && record.result != null ? [{ artifactId: ANSWER_ARTIFACT, name: 'answer', parts: [{ text: record.result }] }] : [],
    history: historyLength == null ? history : history.slice(-historyLength || history.length),
    metadata: { agentId: record.agent, nodeId: record.node }
  }
}

export function a2aStatus (record: TaskRecord): A2ATaskStatus {
  const ids = { taskId: record.id, contextId: record.contextId }
  const said = record.state === 'input-required'
    ? record.question
    : record.error != null ? `${record.error.message}${record.note == null ? '' : ` (${record.note})`}` : record.note
  return { state: wireState(record.state), timestamp: new Date(record.updatedAt).toISOString(), ...(said == null ? {} : { message: agentMessage(said, ids) }) }
}

/** A progress report as a `working` status update carrying the agent's words. */
export function progressEvent (record: Pick<TaskRecord, 'id' | 'contextId'>, message: string, at: number): A2AStreamEvent {
  return {
    statusUpdate: {
      taskId: record.id,
      contextId: record.contextId,
      status: { state: wireState('working'), timestamp: new Date(at).toISOString(), message: agentMessage(message, { taskId: record.id, contextId: record.contextId }) }
    }
  }
}

/** A change of state; a completed task sends its answer as an artifact first. */
export function stateEvents (record: TaskRecord): A2AStreamEvent[] {
  const events: A2AStreamEvent[] = []
  if (record.state === 'completed' && record.result != null) {
    events.push({ artifactUpdate: { taskId: record.id, contextId: record.contextId, artifact: { artifactId: ANSWER_ARTIFACT, name: 'answer', parts: [{ text: record.result }] }, append: false, lastChunk: true } })
  }
  events.push({ statusUpdate: { taskId: record.id, contextId: record.contextId, status: a2aStatus(record) } })
  return events
}
