import { stat } from 'node:fs/promises'
import { StringDecoder } from 'node:string_decoder'
import { setTimeout as delay } from 'node:timers/promises'
import Type from 'typebox'
import { EXEC_TIMEOUT_MS, STDIO_DRAIN_MS } from './constants.js'
import { resolveToolPath } from './paths.js'
import { spawnInGroup, terminateGroup } from './process-group.js'
import { type ToolContext, type ToolDefinition, type ToolRunResult } from './tool.js'
import { ToolError } from '../errors.js'
import type { Readable } from 'node:stream'

export const ExecParams = Type.Object({
  command: Type.String({ minLength: 1, description: 'Shell command, run with /bin/sh -c' }),
  workdir: Type.Optional(Type.String({ minLength: 1, description: 'Working directory; relative to the node\'s tool directory' })),
  env: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Extra environment variables' }))
})

/**
 * `exec`: runs a shell command in its own process group. stdout and stderr
 * stream to the caller as they come; cancellation and timeout kill the
 * whole group. The result details carry the exit code or signal.
 */
export const execTool: ToolDefinition<typeof ExecParams> = {
  name: 'exec',
  description: 'Run a shell command on this node; streams stdout and stderr, returns the exit code',
  parameters: ExecParams,
  timeoutMs: EXEC_TIMEOUT_MS,
  async run (params, context): Promise<ToolRunResult> {
    const cwd = resolveToolPath(context.workdir, params.workdir ?? '.')
    const dir = await stat(cwd).catch(() => undefined)
    if (dir?.isDirectory() !== true) {
      throw new ToolError('bad-workdir', `working directory ${cwd} does not exist or is not a directory`)
    }
    context.signal.throwIfAborted()
    const child = spawnInGroup('/bin/sh', ['-c', params.command], {
      cwd,
      env: { ...context.env, ...params.env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const onAbort = (): void => { terminateGroup(child) }
    context.signal.addEventListener('abort', onAbort, { once: true })
    try {
      const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve, reject) => {
        child.once('error', err => { reject(new ToolError('spawn-failed', `cannot run /bin/sh: ${err.message}`)) })
        child.once('exit', (code, signal) => { resolve({ code, signal }) })
      })
      const piped = Promise.all([
        forward(child.stdout!, 'stdout', context),
        forward(child.stderr!, 'stderr', context)
      ])
      const { code, signal } = await exited
      // A background child may hold the pipes open: stop waiting for them after a moment.
      const drained = await Promise.race([piped.then(() => true), delay(STDIO_DRAIN_MS, false, { ref: false })])
      if (!drained) {
        child.stdout?.destroy()
        child.stderr?.destroy()
      }
      await piped.catch(() => {})
      return { details: { exitCode: code, signal, workdir: cwd } }
    } finally {
      context.signal.removeEventListener('abort', onAbort)
    }
  }
}

/** Sends a pipe's text to the caller, pausing the pipe while a send waits on back-pressure. */
async function forward (pipe: Readable, channel: string, context: ToolContext): Promise<void> {
  const decoder = new StringDecoder('utf8')
  let pending = Promise.resolve()
  await new Promise<void>(resolve => {
    pipe.on('data', (chunk: Buffer) => {
      pipe.pause()
      pending = context.output(channel, decoder.write(chunk)).catch(() => {}).finally(() => { pipe.resume() })
    })
    pipe.once('close', resolve)
  })
  await pending
  await context.output(channel, decoder.end()).catch(() => {})
}
