import { StringDecoder } from 'node:string_decoder'
import { setTimeout as delay } from 'node:timers/promises'
import { SECRET_ENV_VARS, STDIO_DRAIN_MS } from '../tools/constants.js'
import { childEnv } from '../tools/env.js'
import { utf8Prefix } from '../tools/output.js'
import { spawnInGroup, terminateGroup } from '../tools/process-group.js'
import { type AgentRunner, type AgentRunOptions, type AgentRunResult } from './runner.js'
import { AgentRunError } from '../errors.js'
import type { AgentConfig } from '../../config/schema.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface CommandAgentRunnerInit {
  /** Working directory of the commands; defaults to the process working directory. */
  cwd?: string
  /** Environment variables kept from the commands besides SECRET_ENV_VARS (model API key variables). */
  hiddenEnv?: string[]
  /** An answer longer than this (UTF-8 bytes) is cut with a marker. */
  maxAnswerBytes?: number
  /** The node's logger (../node/logging.ts `nodeLogger`), so every line says which node it is. */
  logger: ComponentLogger
}

/** Answers are cut here by default: they travel in a single result frame. */
export const DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024
const STDERR_TAIL_BYTES = 2048
const PROGRESS_LINE_CHARS = 500

/**
 * Runs the agents configured with a `command` (argv, no shell). The command
 * gets `{task, context, agent, id}` as JSON on stdin (tasks add `contextId`,
 * `history` and `resumed`) and answers on stdout: the answer is stdout
 * trimmed; for a task, `{"inputRequired": "<question>"}` asks the caller. Each stderr line is reported as progress; a
 * non-zero exit fails the run with the tail of stderr. Each run is its own
 * process group, killed as a whole on cancellation.
 */
export class CommandAgentRunner implements AgentRunner {
  private readonly log: Logger
  private readonly commands = new Map<string, string[]>()
  private readonly hiddenEnv: string[]
  private readonly maxAnswerBytes: number

  constructor (agents: AgentConfig[], private readonly init: CommandAgentRunnerInit) {
    this.log = init.logger.forComponent('clawmatrix:agents')
    for (const agent of agents) {
      if (agent.command != null) this.commands.set(agent.id, agent.command)
    }
    this.hiddenEnv = [...SECRET_ENV_VARS, ...(init.hiddenEnv ?? [])]
    this.maxAnswerBytes = init.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES
  }

  has (agentId: string): boolean {
    return this.commands.has(agentId)
  }

  async run (agentId: string, task: string, context: unknown, options: AgentRunOptions): Promise<AgentRunResult> {
    const argv = this.commands.get(agentId)
    if (argv == null) throw new AgentRunError(`agent "${agentId}" has no command on this node`, 'no-such-agent')
    options.signal.throwIfAborted()
    const [file, ...args] = argv as [string, ...string[]]
    const child = spawnInGroup(file, args, { cwd: this.init.cwd, env: childEnv(this.hiddenEnv), stdio: ['pipe', 'pipe', 'pipe'] })
    const onAbort = (): void => { terminateGroup(child) }
    options.signal.addEventListener('abort', onAbort, { once: true })
    this.log('running agent %s (%s) as pid %d', agentId, options.id, child.pid)
    try {
      const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve, reject) => {
        child.once('error', (err: NodeJS.ErrnoException) => {
          reject(new AgentRunError(err.code === 'ENOENT'
            ? `cannot run agent "${agentId}": command ${JSON.stringify(file)} not found`
            : `cannot run agent "${agentId}": ${err.message}`))
        })
        child.once('exit', (code, signal) => { resolve({ code, signal }) })
      })
      // A command that never reads stdin closes it early: that is its business, not an error.
      child.stdin!.on('error', () => {})
      const input = options.contextId == null
        ? { task, context, agent: agentId, id: options.id }
        : { task, context, agent: agentId, id: options.id, contextId: options.contextId, history: options.history ?? [], resumed: options.resumed === true }
      child.stdin!.end(JSON.stringify(input))

      const stdout = collect(child.stdout!, this.maxAnswerBytes)
      const stderr = stderrLines(child.stderr!, line => { options.onProgress?.(line.slice(0, PROGRESS_LINE_CHARS)) })
      const { code, signal } = await exited
      const drained = await Promise.race([Promise.all([stdout.done, stderr.done]).then(() => true), delay(STDIO_DRAIN_MS, false, { ref: false })])
      if (!drained) {
        child.stdout?.destroy()
        child.stderr?.destroy()
      }
      options.signal.throwIfAborted()
      if (code !== 0) {
        const how = signal != null ? `was killed by ${signal}` : `exited with code ${code}`
        const tail = stderr.tail().trim()
        throw new AgentRunError(`agent "${agentId}" ${how}${tail === '' ? '' : `: ${tail}`}`)
      }
      const { text, totalBytes } = stdout.result()
      const answer = text.trim()
      const question = options.contextId == null ? undefined : inputRequired(answer)
      if (question != null) return { text: question, inputRequired: true }
      return { text: totalBytes > this.maxAnswerBytes ? `${answer}\n[answer truncated by clawmatrix: ${this.maxAnswerBytes} of ${totalBytes} bytes shown]` : answer }
    } finally {
      options.signal.removeEventListener('abort', onAbort)
    }
  }
}

/** A task's command asks the caller something by answering `{"inputRequired": "<question>"}` alone. */
function inputRequired (answer: string): string | undefined {
  if (!answer.startsWith('{') || !answer.endsWith('}')) return undefined
  try {
    const parsed = JSON.parse(answer)
    return typeof parsed?.inputRequired === 'string' && parsed.inputRequired !== '' ? parsed.inputRequired : undefined
  } catch {
    return undefined
  }
}

/** Keeps the first `maxBytes` of a pipe's text and counts the rest. */
function collect (pipe: NodeJS.ReadableStream, maxBytes: number): { done: Promise<void>, result(): { text: string, totalBytes: number } } {
  const kept: Buffer[] = []
  let keptBytes = 0
  let totalBytes = 0
  const done = new Promise<void>(resolve => {
    pipe.on('data', (chunk: Buffer) => {
      totalBytes += chunk.byteLength
      if (keptBytes < maxBytes) {
        const part = chunk.subarray(0, maxBytes - keptBytes)
        kept.push(part)
        keptBytes += part.byteLength
      }
    })
    pipe.once('close', resolve)
  })
  return {
    done,
    result: () => ({ text: utf8Prefix(Buffer.concat(kept).toString('utf8'), maxBytes), totalBytes })
  }
}

/** Calls `onLine` for each non-empty stderr line and keeps the last STDERR_TAIL_BYTES for errors. */
function stderrLines (pipe: NodeJS.ReadableStream, onLine: (line: string) => void): { done: Promise<void>, tail(): string } {
  const decoder = new StringDecoder('utf8')
  let partial = ''
  let tail = ''
  const take = (text: string): void => {
    tail = (tail + text).slice(-STDERR_TAIL_BYTES)
    const lines = (partial + text).split('\n')
    partial = lines.pop()!
    for (const line of lines) if (line.trim() !== '') onLine(line.trim())
  }
  const done = new Promise<void>(resolve => {
    pipe.on('data', (chunk: Buffer) => { take(decoder.write(chunk)) })
    pipe.once('close', () => {
      take(decoder.end())
      if (partial.trim() !== '') onLine(partial.trim())
      resolve()
    })
  })
  return { done, tail: () => tail }
}
