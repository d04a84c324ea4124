import type { Static, TSchema } from 'typebox'

/** What a tool gets besides its parameters. */
export interface ToolContext {
  /** The executing node, for messages. */
  nodeId: string
  /** Absolute directory relative paths resolve against. */
  workdir: string
  /** Aborted on cancellation or timeout; a tool must stop promptly and kill what it started. */
  signal: AbortSignal
  /**
   * Sends text to the caller on a named channel (`stdout`, `stderr`,
   * `content` ...). Output beyond the node's cap is counted but not sent.
   * Resolves once the text was handed to the stream: await it to respect
   * back-pressure.
   */
  output(channel: string, text: string): Promise<void>
  /** Environment for child processes, with the node's secrets removed. */
  env: NodeJS.ProcessEnv
}

export interface ToolRunResult {
  /** Small structured facts about the run (exit code, path, line numbers), sent in the result frame. */
  details?: Record<string, unknown>
}

/**
 * A tool the proxy can run. The built-ins are in ./builtin.ts; the OpenClaw
 * plugin registers further tools whose `run` forwards to its gateway.
 */
export interface ToolDefinition<S extends TSchema = TSchema> {
  name: string
  description: string
  /** Checked before the call is accepted; also what a model is shown. */
  parameters: S
  /** Default timeout when the request names none. */
  timeoutMs?: number
  run(params: Static<S>, context: ToolContext): Promise<ToolRunResult>
}

