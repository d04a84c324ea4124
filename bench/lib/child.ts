import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'

export interface ReadyChild {
  readonly child: ChildProcess
  readonly pid: number
  /** Milliseconds from just before spawn() to the arrival of the ready line. */
  readonly readyMs: number
  /** The ready pattern's match. */
  readonly match: RegExpMatchArray
  /** Sends SIGTERM (SIGKILL after `graceMs`) and waits for the exit. */
  stop(graceMs?: number): Promise<void>
}

export interface SpawnReadyOptions {
  /** A line on stdout or stderr that means "ready"; its match is returned. */
  ready: RegExp
  env?: NodeJS.ProcessEnv
  timeoutMs?: number
}

/**
 * Spawns `node <args>` on the running Node binary and resolves once its
 * output matches `ready`. Fails, and kills the child, if it exits first or
 * stays silent for `timeoutMs`; the error carries the tail of its output.
 */
export async function spawnNodeUntilReady (args: string[], options: SpawnReadyOptions): Promise<ReadyChild> {
  const { ready, env = process.env, timeoutMs = 20_000 } = options
  const start = performance.now()
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
  const stop = async (graceMs = 5_000): Promise<void> => {
    if (child.exitCode == null && child.signalCode == null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exited
      clearTimeout(timer)
    }
  }

  let output = ''
  try {
    const { match, at } = await new Promise<{ match: RegExpMatchArray, at: number }>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        const at = performance.now()
        output += String(chunk)
        const match = output.match(ready)
        if (match != null) resolve({ match, at })
      }
      child.stdout.on('data', onData)
      child.stderr.on('data', onData)
      child.once('error', reject)
      child.once('exit', (code, signal) => {
        reject(new Error(`exited (${signal ?? code}) before printing ${ready}`))
      })
      setTimeout(() => { reject(new Error(`no output matching ${ready} within ${timeoutMs} ms`)) }, timeoutMs).unref()
    })
    if (child.pid == null) throw new Error('no pid')
    return { child, pid: child.pid, readyMs: at - start, match, stop }
  } catch (err: any) {
    await stop(0)
    throw new Error(`node ${args.join(' ')}: ${err.message}; output:\n${output.slice(-2_000)}`)
  }
}

/** Resident set size of a process in bytes (Linux /proc). */
export async function rssBytes (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the RSS of process ${pid} from /proc (${err.code ?? err.message}); the memory figures need Linux`)
  })
  const kib = status.match(/^VmRSS:\s+(\d+) kB$/m)?.[1]
  if (kib == null) throw new Error(`no VmRSS line in /proc/${pid}/status`)
  return Number(kib) * 1024
}
