/**
 * How a node runs its agents for hand-offs from other nodes. Standalone
 * nodes use CommandAgentRunner (./command-runner.ts); the OpenClaw plugin
 * provides one that runs the gateway's agents.
 */
export interface AgentRunner {
  /** Whether this node can run `agentId`; a hand-off to any other agent is refused before it starts. */
  has(agentId: string): boolean | Promise<boolean>
  /**
   * Runs one task to its answer. Must stop promptly, and stop whatever it
   * started, when `options.signal` aborts (cancellation or timeout).
   */
  run(agentId: string, task: string, context: unknown, options: AgentRunOptions): Promise<AgentRunResult>
  /**
   * Whether aborting a run of `agentId` really stops it (default true). A
   * runner whose host offers no abort says false, so a cancellation can say
   * plainly that the run goes on.
   */
  stopsOnCancel?(agentId: string): boolean | Promise<boolean>
}

import type { MessageOrigin } from './message-sink.js'
import { AgentRunError } from '../errors.js'

export interface AgentRunOptions {
  signal: AbortSignal
  /** Reports what the agent is doing; forwarded to the caller as progress frames. */
  onProgress?(message: string): void
  /** The hand-off id, unique per task (a runner may use it to name a session). */
  id: string
  /**
   * Tasks only: the conversation this run belongs to. A runner with sessions
   * keeps one session per contextId, so a later task sees the earlier turns.
   */
  contextId?: string
  /**
   * Tasks only: the conversation's earlier turns, oldest first, for runners
   * without sessions. For a resumed task the agent's question and the
   * caller's answer are its last two turns.
   */
  history?: Array<{ role: 'user' | 'agent', text: string }>
  /** Tasks only: this run resumes a task that asked for input; the answer is the last turn of `history`. */
  resumed?: boolean
  /** Who handed the task over: the calling node and, when it said, its agent. */
  from?: MessageOrigin
}

export interface AgentRunResult {
  text: string
  /** The agent asks the caller something (`text` is the question): the task waits in `input-required`. */
  inputRequired?: boolean
}

/** Several runners as one: an agent runs on the first runner that has it. */
export class AgentRunners implements AgentRunner {
  constructor (private readonly runners: AgentRunner[]) {}

  async has (agentId: string): Promise<boolean> {
    return await this.runnerOf(agentId) != null
  }

  async run (agentId: string, task: string, context: unknown, options: AgentRunOptions): Promise<AgentRunResult> {
    const runner = await this.runnerOf(agentId)
    if (runner == null) throw new AgentRunError(`no agent "${agentId}" on this node`, 'no-such-agent')
    return await runner.run(agentId, task, context, options)
  }

  async stopsOnCancel (agentId: string): Promise<boolean> {
    const runner = await this.runnerOf(agentId)
    return await runner?.stopsOnCancel?.(agentId) ?? true
  }

  private async runnerOf (agentId: string): Promise<AgentRunner | undefined> {
    for (const runner of this.runners) if (await runner.has(agentId)) return runner
    return undefined
  }
}
