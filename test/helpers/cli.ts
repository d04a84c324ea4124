import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { waitFor } from './wait.js'

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))

export interface CliProcess {
  child: ChildProcess
  /** stdout and stderr lines so far. */
  output: () => string
  waitForOutput: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  exited: Promise<number | null>
  /** Sends SIGTERM (SIGKILL if it is still alive after 5 s) and waits for exit. */
  stop: () => Promise<number | null>
}

/** Runs the built CLI (`dist/cli/main.js`) as a child process on the same Node. */
export function runCli (args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  child.stdout!.on('data', chunk => { text += String(chunk) })
  child.stderr!.on('data', chunk => { text += String(chunk) })
  // 'close', not 'exit': by then stdout and stderr have been read to the end.
  const exited = new Promise<number | null>(resolve => child.once('close', code => { resolve(code) }))
  return {
    child,
    output: () => text,
    // The output so far is read when the wait fails, not when it starts.
    waitForOutput: async (pattern, timeoutMs = 60_000) => waitFor(`output matching ${pattern}`, () => text.match(pattern), { timeoutMs })
      .catch((err: Error) => { throw new Error(`${err.message}; so far:\n${text}`) }),
    exited,
    stop: async () => {
      if (child.exitCode == null && child.signalCode == null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
        await exited
        clearTimeout(timer)
      }
      return exited
    }
  }
}

/** Runs the CLI to completion and returns its exit code and output. */
export async function runCliToEnd (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, output: string }> {
  const cli = runCli(args, env)
  const code = await cli.exited
  return { code, output: cli.output() }
}
