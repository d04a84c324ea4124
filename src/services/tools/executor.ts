import { once, setMaxListeners } from 'node:events'
import { resolve } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Value } from 'typebox/value'
import { DEFAULT_TOOL_TIMEOUT_MS, KILL_GRACE_MS, MAX_TOOL_TIMEOUT_MS, SECRET_ENV_VARS } from './constants.js'
import { childEnv } from './env.js'
import { OutputLimiter, type OutputSender, type Truncation } from './output.js'
import { toolPolicyRefusal } from './policy.js'
import { ToolError } from '../errors.js'
import type { ToolRegistry } from './registry.js'
import type { ToolProxyConfig } from '../../config/schema.js'

export interface ToolExecutorInit {
  /** This node's id, for messages. */
  nodeId: string
  config: ToolProxyConfig
  registry: ToolRegistry
  /** Environment variables removed from child processes besides SECRET_ENV_VARS (model API key variables). */
  hiddenEnv?: string[]
}

export interface ToolCall {
  tool: string
  params: unknown
  timeoutMs?: number
}

export interface ToolCallRefusal {
  code: 'tool-disabled' | 'denied' | 'unknown-tool' | 'bad-params'
  message: string
}

export type ToolStatus = 'ok' | 'error' | 'timeout' | 'cancelled'

export interface ToolOutcome {
  status: ToolStatus
  details?: Record<string, unknown>
  error?: { code: string, message: string }
  truncated?: Truncation
}

export interface ExecuteOptions {
  /** Aborted when the caller cancels or goes away. */
  signal: AbortSignal
  /** Where capped output goes (the protocol writes it as frames). */
  output: OutputSender
}

/**
 * Runs tool calls on this node under its toolProxy policy: enabled,
 * allow/deny, a timeout, and the output cap. Shared by the tool protocol
 * and by anything that runs tools locally.
 */
export class ToolExecutor {
  readonly workdir: string
  private readonly hiddenEnv: string[]

  constructor (private readonly init: ToolExecutorInit) {
    this.workdir = resolve(init.config.workdir ?? process.cwd())
    this.hiddenEnv = [...SECRET_ENV_VARS, ...(init.hiddenEnv ?? [])]
  }

  /** Why this call would not be run, checked before accepting it; undefined when it would. */
  refusal (call: ToolCall): ToolCallRefusal | undefined {
    const { nodeId, config, registry } = this.init
    if (!config.enabled) return toolPolicyRefusal(config, call.tool, nodeId)
    const tool = registry.get(call.tool)
    if (tool == null) {
      return { code: 'unknown-tool', message: `unknown tool "${call.tool}" on ${nodeId}; it has ${registry.names().join(', ') || 'no tools'}` }
    }
    const refusal = toolPolicyRefusal(config, call.tool, nodeId)
    if (refusal != null) return refusal
    if (!Value.Check(tool.parameters, call.params)) {
      const first = Value.Errors(tool.parameters, call.params)[0]
      const field = first?.instancePath.split('/').slice(1).join('.') ?? ''
      const problem = first == null ? 'invalid' : first.keyword === 'required'
        ? `missing ${((first.params as any).requiredProperties as string[]).join(', ')}`
        : `expected ${first.message.replace(/^must (be )?/, '')}`
      return { code: 'bad-params', message: `bad parameters for ${call.tool}: ${field === '' ? problem : `${field}: ${problem}`}` }
    }
    return undefined
  }

  /** The timeout a call runs under: its own, else the tool's default, at most MAX_TOOL_TIMEOUT_MS. */
  timeoutOf (call: ToolCall): number {
    const fallback = this.init.registry.get(call.tool)?.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS
    return Math.min(call.timeoutMs ?? fallback, MAX_TOOL_TIMEOUT_MS)
  }

  /**
   * Runs an accepted call (see `refusal`) to its outcome; never throws. On
   * timeout or cancellation the tool is aborted and, if it does not stop
   * within KILL_GRACE_MS, the outcome is reported without waiting further.
   */
  async execute (call: ToolCall, options: ExecuteOptions): Promise<ToolOutcome> {
    const { nodeId, config, registry } = this.init
    const refusal = this.refusal(call)
    if (refusal != null) return { status: 'error', error: refusal }
    const tool = registry.get(call.tool)!
    const timeoutMs = this.timeoutOf(call)
    const deadline = AbortSignal.timeout(timeoutMs)
    const signal = AbortSignal.any([options.signal, deadline])
    setMaxListeners(Infinity, signal)
    const limiter = new OutputLimiter(config.maxOutputBytes, options.output, nodeId)

    const running = tool.run(call.params, {
      nodeId,
      workdir: this.workdir,
      signal,
      output: async (channel, text) => { await limiter.write(channel, text) },
      env: childEnv(this.hiddenEnv)
    })
    let outcome: ToolOutcome
    const settled = new AbortController()
    try {
      const result = await Promise.race([running, abandoned(signal, settled.signal)])
      // A killed command still "finishes" (with a signal): the abort decides the status.
      outcome = signal.aborted ? this.stopped(call, timeoutMs, deadline, options.signal) : { status: 'ok', details: result.details }
    } catch (err: any) {
      outcome = signal.aborted
        ? this.stopped(call, timeoutMs, deadline, options.signal)
        : { status: 'error', error: { code: err instanceof ToolError ? err.code : 'tool-failed', message: err.message } }
    }
    settled.abort()
    running.catch(() => {})
    try {
      outcome.truncated = await limiter.finish()
    } catch {}
    return outcome
  }

  private stopped (call: ToolCall, timeoutMs: number, deadline: AbortSignal, cancel: AbortSignal): ToolOutcome {
    // the reason says who cancelled: the caller, or this node shutting down
    const why = cancel.reason instanceof Error ? cancel.reason.message : 'cancelled by the caller'
    return deadline.aborted
      ? { status: 'timeout', error: { code: 'timeout', message: `${call.tool} did not finish within ${timeoutMs} ms on ${this.init.nodeId} and was stopped` } }
      : { status: 'cancelled', error: { code: 'cancelled', message: `${call.tool} was ${why === 'cancelled by the caller' ? why : `cancelled: ${why}`}` } }
  }
}

/**
 * Rejects KILL_GRACE_MS after `signal` aborts, so a tool that ignores its
 * signal does not hold the call; gives up quietly once `settled` aborts.
 */
async function abandoned (signal: AbortSignal, settled: AbortSignal): Promise<never> {
  if (!signal.aborted) await once(signal, 'abort', { signal: settled })
  await delay(KILL_GRACE_MS, undefined, { signal: settled, ref: false })
  throw signal.reason
}
