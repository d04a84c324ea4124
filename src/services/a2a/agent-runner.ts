/**
 * Offers external A2A agents to the cluster: an agent configured with
 * `a2a: { url, tokenEnv }` runs a hand-off by sending the task to that agent
 * over A2A JSON-RPC from this node, so its token never leaves this node and
 * callers reach it through the mesh.
 */
import { type AgentRunner, type AgentRunOptions, type AgentRunResult } from '../agents/runner.js'
import { AgentRunError } from '../errors.js'
import { A2AClient } from './client.js'
import { A2AAgentError } from './errors.js'
import { answerOf, checkTask, stateFromWire, textOf, userMessage, type A2AArtifact, type A2AStreamEvent } from './wire.js'
import type { AgentConfig } from '../../config/schema.js'

/** How long a cancel may take to reach the external agent before the run is let go. */
const CANCEL_TIMEOUT_MS = 5_000

export interface A2AAgentRunnerInit {
  /** Environment to read `tokenEnv` from. @default process.env */
  env?: NodeJS.ProcessEnv
}

/** External tasks waiting for input, remembered so the answer resumes the same task (oldest dropped first). */
const MAX_WAITING_TASKS = 1000

export class A2AAgentRunner implements AgentRunner {
  private readonly clients = new Map<string, A2AClient>()
  /** contextId -> the external agent's task that asked for input in that conversation. */
  private readonly waiting = new Map<string, string>()

  constructor (agents: AgentConfig[], init: A2AAgentRunnerInit = {}) {
    const env = init.env ?? process.env
    for (const agent of agents) {
      if (agent.a2a == null) continue
      const token = agent.a2a.tokenEnv == null ? undefined : env[agent.a2a.tokenEnv]
      this.clients.set(agent.id, new A2AClient({ url: agent.a2a.url, token, label: `A2A agent "${agent.id}"` }))
    }
  }

  has (agentId: string): boolean {
    return this.clients.has(agentId)
  }

  async run (agentId: string, task: string, _context: unknown, options: AgentRunOptions): Promise<AgentRunResult> {
    const client = this.clients.get(agentId)
    if (client == null) throw new AgentRunError(`agent "${agentId}" is not an A2A agent on this node`, 'no-such-agent')
    // A resumed task sends the caller's answer (the last turn) into the external task that asked.
    const answer = options.resumed === true ? options.history?.at(-1)?.text : undefined
    const resumes = options.contextId == null ? undefined : this.waiting.get(options.contextId)
    if (options.contextId != null) this.waiting.delete(options.contextId)
    const run = new RemoteRun(options, answer == null ? undefined : resumes)
    const message = userMessage(answer ?? task, { contextId: options.contextId, ...(answer != null && resumes != null ? { taskId: resumes } : {}) })
    const cancelRemote = (): void => {
      if (run.taskId == null) return
      // Best effort: the fetch below is aborted either way, which ends a streaming run on most servers.
      void client.cancelTask(run.taskId, AbortSignal.timeout(CANCEL_TIMEOUT_MS)).catch(() => {})
    }
    options.signal.addEventListener('abort', cancelRemote, { once: true })
    try {
      for await (const event of client.sendStreaming(message, options.signal)) {
        run.take(event)
        if (run.finished) break
      }
    } catch (err: any) {
      if (options.signal.aborted) throw options.signal.reason
      if (err instanceof A2AAgentError) throw new AgentRunError(err.message)
      throw err
    } finally {
      options.signal.removeEventListener('abort', cancelRemote)
    }
    const result = run.result(agentId)
    if (result.inputRequired === true && options.contextId != null && run.taskId != null) this.remember(options.contextId, run.taskId)
    return result
  }

  private remember (contextId: string, taskId: string): void {
    this.waiting.set(contextId, taskId)
    if (this.waiting.size > MAX_WAITING_TASKS) this.waiting.delete(this.waiting.keys().next().value!)
  }
}

/** Folds one external task's events into progress and a final answer. */
class RemoteRun {
  taskId?: string
  private state = 'submitted'
  private statusText = ''
  private readonly artifacts = new Map<string, string>()
  private directAnswer?: string

  /** `resuming`: the external task this run answers; its first snapshot may still say input-required. */
  constructor (private readonly options: AgentRunOptions, private readonly resuming?: string) {}

  get finished (): boolean {
    return this.directAnswer != null || ['completed', 'failed', 'canceled', 'rejected', 'input-required'].includes(this.state)
  }

  take (event: A2AStreamEvent): void {
    if ('message' in event) {
      this.directAnswer = textOf(event.message)
    } else if ('task' in event) {
      const task = checkTask(event.task)
      this.taskId = task.id
      const stale = task.id === this.resuming && stateFromWire(task.status.state) === 'input-required'
      this.setState(stale ? 'working' : task.status.state, stale ? '' : textOf(task.status.message))
      for (const artifact of task.artifacts) this.artifacts.set(artifact.artifactId, textOf(artifact))
      if (this.finished && this.artifacts.size === 0) this.statusText = answerOf(task)
    } else if ('statusUpdate' in event) {
      this.taskId ??= event.statusUpdate.taskId
      this.setState(event.statusUpdate.status?.state, textOf(event.statusUpdate.status?.message))
    } else if ('artifactUpdate' in event) {
      if (event.artifactUpdate.artifact != null) this.addArtifact(event.artifactUpdate.artifact, event.artifactUpdate.append === true)
    }
  }

  result (agentId: string): AgentRunResult {
    if (this.directAnswer != null) return { text: this.directAnswer }
    const answer = this.artifacts.size > 0 ? [...this.artifacts.values()].join('\n') : this.statusText
    switch (this.state) {
      case 'completed': return { text: answer }
      case 'input-required': return { text: this.statusText, inputRequired: true }
      case 'canceled': throw new AgentRunError(`A2A agent "${agentId}" canceled the task${this.statusText === '' ? '' : `: ${this.statusText}`}`)
      case 'rejected': throw new AgentRunError(`A2A agent "${agentId}" rejected the task${this.statusText === '' ? '' : `: ${this.statusText}`}`, 'refused')
      case 'failed': throw new AgentRunError(`A2A agent "${agentId}" failed${this.statusText === '' ? '' : `: ${this.statusText}`}`)
      default: throw new AgentRunError(`A2A agent "${agentId}" ended its stream while the task was ${this.state}`)
    }
  }

  private setState (wire: unknown, text: string): void {
    this.state = stateFromWire(wire) ?? this.state
    if (text === '') return
    this.statusText = text
    if (this.state === 'working') this.options.onProgress?.(text)
  }

  private addArtifact (artifact: A2AArtifact, append: boolean): void {
    const text = textOf(artifact)
    const id = String(artifact.artifactId ?? '')
    const before = this.artifacts.get(id) ?? ''
    this.artifacts.set(id, append ? before + text : text)
    if (text !== '') this.options.onProgress?.(text)
  }
}
