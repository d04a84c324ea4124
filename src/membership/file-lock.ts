import { open, readFile, rm } from 'node:fs/promises'
import { MembershipSetupError } from './errors.js'

export interface FileLockOptions {
  /**
   * Give up after waiting this long for another holder.
   *
   * @default 10_000
   */
  timeoutMs?: number
}

const RETRY_MS = 20
const DEFAULT_TIMEOUT_MS = 10_000

interface LockHolder {
  pid: number
  since: number
}

/**
 * Runs `update` holding `<file>.lock`, so two processes that read, change
 * and rewrite `file` (two `clawmatrix invite` at once) take turns instead of
 * one overwriting the other's record. The lock is a file created with
 * O_EXCL that names its holder; a lock whose holder process is gone (killed
 * mid-update) is taken over.
 */
export async function withFileLock<T> (file: string, update: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const lock = `${file}.lock`
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o600)
      try {
        await handle.writeFile(JSON.stringify({ pid: process.pid, since: Date.now() } satisfies LockHolder))
      } finally {
        await handle.close()
      }
      break
    } catch (err: any) {
      if (err.code !== 'EEXIST') throw err
    }
    const holder = await readHolder(lock)
    if (holder != null && !isAlive(holder.pid)) {
      // Another waiter may have taken it over already and written its own holder: remove only the dead one's.
      const again = await readHolder(lock)
      if (again?.pid === holder.pid && again.since === holder.since) await rm(lock, { force: true })
      continue
    }
    if (Date.now() >= deadline) {
      const who = holder == null ? 'another process' : `process ${holder.pid} (since ${new Date(holder.since).toISOString()})`
      throw new MembershipSetupError(`${file} is locked by ${who}; wait for it to finish, or remove ${lock} if no such process runs`)
    }
    await new Promise(resolve => setTimeout(resolve, RETRY_MS))
  }
  try {
    return await update()
  } finally {
    await rm(lock, { force: true })
  }
}

async function readHolder (lock: string): Promise<LockHolder | undefined> {
  try {
    const holder = JSON.parse(await readFile(lock, 'utf8'))
    return Number.isInteger(holder?.pid) && typeof holder.since === 'number' ? holder : undefined
  } catch {
    // Gone, or still being written by its creator: look again on the next turn.
    return undefined
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    return err.code === 'EPERM'
  }
}
