import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const SEQUENCE_FILE = 'announce-seq'

/**
 * The announcement sequence number: it only grows, across restarts too, so
 * other nodes can tell a replayed card from a new one. Each value is at least
 * the wall clock in ms, and at least one more than the last value stored, so
 * even a crash (which stores nothing) or a clock stepped back stays safe.
 */
export class AnnounceSequence {
  private constructor (private readonly file: string, private last: number) {}

  static async load (stateDir: string): Promise<AnnounceSequence> {
    const file = join(stateDir, SEQUENCE_FILE)
    const stored = Number(await readFile(file, 'utf8').catch(() => '0'))
    return new AnnounceSequence(file, Number.isSafeInteger(stored) ? stored : 0)
  }

  next (): number {
    this.last = Math.max(this.last + 1, Date.now())
    return this.last
  }

  async save (): Promise<void> {
    await mkdir(join(this.file, '..'), { recursive: true })
    await writeFile(this.file, String(this.last), { mode: 0o600 })
  }
}
