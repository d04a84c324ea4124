import { randomBytes } from 'node:crypto'
import { link, readFile, rm, unlink, writeFile } from 'node:fs/promises'
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
  /** Tells two locks of one pid and millisecond apart (absent in locks of older versions). */
  nonce?: string
}

/**
 * Runs `update` holding `<file>.lock`, so two processes that read, change
 * and rewrite `file` (two `clawmatrix invite` at once) take turns instead of
 * one overwriting the other's record.
 *
 * The lock is a file naming its holder, put in place whole with link(2),
 * which fails if the name exists. A lock whose holder process is gone (killed
 * mid-update) is taken over, atomically: see `removeDeadLock`.
 */
export async function withFileLock<T> (file: string, update: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const lock = `${file}.lock`
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  const nonce = randomBytes(8).toString('hex')
  while (!await tryCreate(lock, { pid: process.pid, since: Date.now(), nonce })) {
    const holder = await readHolder(lock)
    if (holder != null && !isAlive(holder.pid)) {
      await removeDeadLock(lock, holder)
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

/** Puts the lock in place holding `self`, or returns false if it exists. Readers never see it half written. */
async function tryCreate (lock: string, self: LockHolder): Promise<boolean> {
  const draft = `${lock}.${self.pid}-${self.nonce}`
  await writeFile(draft, JSON.stringify(self), { mode: 0o600 })
  try {
    await link(draft, lock)
    return true
  } catch (err: any) {
    if (err.code === 'EEXIST') return false
    throw err
  } finally {
    await rm(draft, { force: true })
  }
}

/**
 * Removes the lock `dead` left, unless someone else does. Several waiters see
 * the same dead lock at once; removing it by name after a check would let a
 * slow one remove the lock a quicker one has taken since. So each waiter
 * first links the lock to one name derived from the dead holder: link(2)
 * succeeds for one of them only, and what it linked is what `lock` named at
 * that moment. If that is the dead holder's lock, `lock` still names it (only
 * the one with the link removes it), and the waiter removes it. Anyone else
 * goes back to trying to take the lock.
 */
async function removeDeadLock (lock: string, dead: LockHolder): Promise<void> {
  const claim = `${lock}.takeover-${dead.pid}-${dead.since}-${dead.nonce ?? ''}`
  try {
    await link(lock, claim)
  } catch (err: any) {
    // EEXIST: another waiter is taking it over; ENOENT: the lock is gone already.
    if (err.code === 'EEXIST' || err.code === 'ENOENT') return
    throw err
  }
  try {
    if (sameHolder(await readHolder(claim), dead)) {
      await unlink(lock).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
    }
  } finally {
    await rm(claim, { force: true })
  }
}

async function readHolder (lock: string): Promise<LockHolder | undefined> {
  try {
    const holder = JSON.parse(await readFile(lock, 'utf8'))
    return Number.isInteger(holder?.pid) && typeof holder.since === 'number' ? holder : undefined
  } catch {
    // Gone since: look again on the next turn.
    return undefined
  }
}

function sameHolder (a: LockHolder | undefined, b: LockHolder): boolean {
  return a != null && a.pid === b.pid && a.since === b.since && a.nonce === b.nonce
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    return err.code === 'EPERM'
  }
}
