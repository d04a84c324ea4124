import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { KILL_GRACE_MS } from './constants.js'

/**
 * Spawns a command as the leader of its own process group (POSIX), so
 * everything it starts can be signalled at once through the group id.
 */
export function spawnInGroup (file: string, args: string[], options: SpawnOptions): ChildProcess {
  return spawn(file, args, { ...options, detached: true })
}

/** Signals every process in the group led by `pid`; false if none is left. */
export function signalGroup (pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal)
    return true
  } catch (err: any) {
    if (err.code === 'ESRCH') return false
    throw err
  }
}

/**
 * Stops a process tree: SIGTERM to the whole group now, SIGKILL to whatever
 * is left of it after `graceMs`. Background processes the command started
 * are in the group too, unless they moved to a group of their own (setsid).
 */
export function terminateGroup (child: ChildProcess, graceMs = KILL_GRACE_MS): void {
  const pid = child.pid
  if (pid == null) return
  if (!signalGroup(pid, 'SIGTERM')) return
  const timer = setTimeout(() => {
    // While any member (even a zombie) is left the group id cannot be reused, so this reaches only the tree.
    if (signalGroup(pid, 0)) signalGroup(pid, 'SIGKILL')
  }, graceMs)
  timer.unref()
}
