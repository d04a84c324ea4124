/**
 * How work from other nodes runs inside this gateway: hand-offs become
 * OpenClaw agent runs and one-way messages go into the agent's main
 * session, through OpenClaw's plugin runtime (`api.runtime.subagent`).
 * The services side sees only its own AgentRunner and MessageSink.
 */
import { describeOrigin, type DeliverOptions, type MessageOrigin, type MessageSink } from '../services/agents/message-sink.js'
import { type AgentRunner, type AgentRunOptions, type AgentRunResult } from '../services/agents/runner.js'
import { AgentRunError } from '../services/errors.js'

/** The part of `api.runtime.subagent` used here. */
export interface SubagentRuntime {
  run(params: { sessionKey: string, message: string, deliver?: boolean, idempotencyKey?: string }): Promise<{ runId: string, sessionKey?: string }>
  waitForRun(params: { runId: string, timeoutMs?: number }): Promise<{ status: 'ok' | 'timeout' | 'error' | 'pending', error?: string }>
  getSessionMessages(params: { sessionKey: string, limit?: number }): Promise<{ messages: unknown[] }>
  deleteSession(params: { sessionKey: string, deleteTranscript?: boolean }): Promise<void>
}

/**
 * `subagent` with every call made in the async context `inContext` runs
 * functions in. OpenClaw keeps the scope of the request a plugin is serving
 * (its client and that client's authority) in async context, and the mesh
 * inherits it: work that arrives later on a stream or a connection opened
 * during a tool call (a task's result to deliver, a hand-off over a
 * connection dialed on demand) would run in that tool call's scope, whose
 * authority ended with its HTTP request, and OpenClaw refuses it ("Gateway
 * client authority closed before dispatching agent"). The plugin passes the
 * context its service started in.
 */
export function subagentIn (subagent: SubagentRuntime, inContext: <R>(fn: () => R) => R): SubagentRuntime {
  return {
    run: async params => inContext(async () => subagent.run(params)),
    waitForRun: async params => inContext(async () => subagent.waitForRun(params)),
    getSessionMessages: async params => inContext(async () => subagent.getSessionMessages(params)),
    deleteSession: async params => { await inContext(async () => { await subagent.deleteSession(params) }) }
  }
}

/** How often a run is checked while it goes on, so a cancellation is noticed within this time. */
const WAIT_SLICE_MS = 2_000

/** OpenClaw's session keys name the agent: `agent:<agentId>:<session>`. */
export function sessionKey (agentId: string, session: string): string {
  return `agent:${agentId}:${session}`
}

/** The part of `api.runtime.events` used here: OpenClaw's agent events (assistant text, tool steps). */
export interface AgentEvents {
  onAgentEvent(listener: (event: { runId: string, stream: string, sessionKey?: string, data: Record<string, unknown> }) => void): () => void
}

/** Assistant text is reported as progress at most this often (the final answer is the result anyway). */
const ASSISTANT_PROGRESS_MS = 250

/**
 * Runs a hand-off as an OpenClaw session of the named agent and answers
 * with the agent's last reply. A one-call hand-off gets a fresh session
 * (one per hand-off id, so a retried hand-off lands in the same one); a task
 * gets one session per conversation (`clawmatrix-<contextId>`), so a
 * follow-up sees the earlier turns. Progress comes from OpenClaw's agent
 * events: tool steps and the assistant's text so far. OpenClaw offers
 * plugins no way to abort a subagent run (`stopsOnCancel` is false): on
 * cancellation the caller is released and the run goes on.
 */
export class OpenClawAgentRunner implements AgentRunner {
  constructor (private readonly subagent: SubagentRuntime, private readonly agents: ReadonlySet<string>, private readonly events?: AgentEvents) {}

  has (agentId: string): boolean {
    return this.agents.has(agentId)
  }

  stopsOnCancel (): boolean {
    return false
  }

  async run (agentId: string, task: string, context: unknown, options: AgentRunOptions): Promise<AgentRunResult> {
    const conversation = options.contextId != null
    const key = sessionKey(agentId, `clawmatrix-${options.contextId ?? options.id}`)
    options.signal.throwIfAborted()
    // A resumed task sends only the caller's answer: the session holds the task and the question.
    const message = options.resumed === true ? options.history?.at(-1)?.text ?? task : handoffMessage(task, context, options.from)
    const idempotencyKey = options.resumed === true ? `${options.id}-${options.history?.length ?? 0}` : options.id
    const stopProgress = this.followProgress(key, options)
    try {
      const { runId, sessionKey: accepted = key } = await this.subagent.run({ sessionKey: key, message, deliver: false, idempotencyKey })
      options.onProgress?.(`agent ${agentId} started (run ${runId})`)
      try {
        while (true) {
          options.signal.throwIfAborted()
          const wait = await this.subagent.waitForRun({ runId, timeoutMs: WAIT_SLICE_MS })
          if (wait.status === 'ok') break
          if (wait.status === 'error') throw new AgentRunError(`agent ${agentId} failed: ${wait.error ?? 'no reason given'}`)
        }
      } catch (err) {
        // A one-call hand-off's session is its own; a conversation's session stays for its next turn.
        if (options.signal.aborted && !conversation) await this.subagent.deleteSession({ sessionKey: accepted, deleteTranscript: false }).catch(() => {})
        throw err
      }
      const { messages } = await this.subagent.getSessionMessages({ sessionKey: accepted, limit: 20 })
      const text = lastAssistantText(messages)
      if (text == null) throw new AgentRunError(`agent ${agentId} finished without a reply`, 'no-reply')
      return { text }
    } finally {
      stopProgress()
    }
  }

  /** Reports the session's tool steps and assistant text as progress while the run goes on. */
  private followProgress (key: string, options: AgentRunOptions): () => void {
    if (this.events == null || options.onProgress == null) return () => {}
    let lastText = 0
    try {
      return this.events.onAgentEvent(event => {
        if (event.sessionKey !== key) return
        const data = event.data ?? {}
        if (event.stream === 'tool' && typeof data.name === 'string' && (data.phase === 'start' || data.phase === 'result')) {
          options.onProgress!(`tool ${data.name} ${data.phase === 'start' ? 'started' : 'finished'}`)
        } else if (event.stream === 'assistant' && typeof data.text === 'string' && data.text !== '' && Date.now() - lastText >= ASSISTANT_PROGRESS_MS) {
          lastText = Date.now()
          options.onProgress!(data.text)
        }
      })
    } catch {
      return () => {}
    }
  }
}

/**
 * The longest a message waits for OpenClaw to admit its run before it is
 * acknowledged as handed over: under load OpenClaw queues session writes
 * for many seconds, and the sender gives up waiting for an answer after
 * 15 s (ACCEPT_TIMEOUT_MS of the wire).
 */
export const HANDOVER_WAIT_MS = 10_000

/**
 * Delivers a one-way message into the agent's main session, where it
 * starts a turn. It resolves once OpenClaw admitted the run, or once the
 * run is queued in OpenClaw for HANDOVER_WAIT_MS, whichever comes first
 * (the sender asked for delivery, not for an answer); a run that fails
 * after that is reported through `onLateFailure`.
 */
export class OpenClawMessageSink implements MessageSink {
  constructor (
    private readonly subagent: SubagentRuntime,
    private readonly agents: ReadonlySet<string>,
    private readonly onLateFailure: (message: string) => void = () => {},
    private readonly handoverWaitMs = HANDOVER_WAIT_MS
  ) {}

  has (agentId: string): boolean {
    return this.agents.has(agentId)
  }

  async deliver (agentId: string, message: string, from: MessageOrigin, options: DeliverOptions): Promise<void> {
    options.signal.throwIfAborted()
    const sender = describeOrigin(from)
    const admitted = this.subagent.run({
      sessionKey: sessionKey(agentId, 'main'),
      message: `[clawmatrix message from ${sender}]\n${message}`,
      deliver: false,
      idempotencyKey: options.id
    })
    let timer: ReturnType<typeof setTimeout> | undefined
    const queued = new Promise<'queued'>(resolve => { timer = setTimeout(() => { resolve('queued') }, this.handoverWaitMs) })
    try {
      if (await Promise.race([admitted, queued]) === 'queued') {
        admitted.catch((err: Error) => { this.onLateFailure(`message ${options.id} for agent ${agentId} was acknowledged as queued, then failed: ${err.message}`) })
      }
    } finally {
      clearTimeout(timer)
    }
  }
}

export function handoffMessage (task: string, context: unknown, from?: MessageOrigin): string {
  const background = context == null || context === '' ? '' : `\n\nContext:\n${typeof context === 'string' ? context : JSON.stringify(context, null, 2)}`
  return `[task handed off through clawmatrix${from == null ? '' : ` from ${describeOrigin(from)}`}]\n${task}${background}`
}

/** The text of the last assistant message in an OpenClaw transcript. */
export function lastAssistantText (messages: unknown[]): string | undefined {
  for (const message of [...messages].reverse()) {
    const { role, content } = (message ?? {}) as { role?: unknown, content?: unknown }
    if (role !== 'assistant') continue
    if (typeof content === 'string') return content
    if (Array.isArray(content)) {
      const text = content.filter(part => part?.type === 'text' && typeof part.text === 'string').map(part => part.text as string).join('')
      if (text !== '') return text
    }
  }
  return undefined
}
