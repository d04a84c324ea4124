import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Id } from '../services/protocols/messages.js'
import { isTerminal, TASK_STATES, type TaskRecord } from './task.js'

export interface TaskStoreInit {
  /** `<stateDir>/tasks/<role>`. */
  dir: string
  /** Finished records older than this are removed. */
  maxAgeMs: number
  /** At most this many records; the oldest finished ones are removed first. */
  maxRecords: number
}

const ID = new RegExp((Id as { pattern?: string }).pattern!)

/**
 * The task records of one role, in memory and one JSON file each under
 * `dir`. A write replaces the file through a rename, so a crash leaves the
 * old record or the new one, never half of one. Writes of one record are
 * serialized; a file that cannot be read back is skipped, not fatal.
 */
export class TaskStore {
  private readonly records = new Map<string, TaskRecord>()
  private readonly writes = new Map<string, Promise<void>>()

  constructor (private readonly init: TaskStoreInit) {}

  /** Reads every record on disk; returns the names of files that could not be read. */
  async load (): Promise<string[]> {
    await mkdir(this.init.dir, { recursive: true, mode: 0o700 })
    const skipped: string[] = []
    for (const name of await readdir(this.init.dir)) {
      if (!name.endsWith('.json')) continue
      try {
        const record = JSON.parse(await readFile(join(this.init.dir, name), 'utf8')) as TaskRecord
        if (!ID.test(record.id) || !TASK_STATES.includes(record.state) || `${record.id}.json` !== name) throw new Error('not a task record')
        this.records.set(record.id, record)
      } catch {
        skipped.push(name)
      }
    }
    await this.prune()
    return skipped
  }

  get (id: string): TaskRecord | undefined {
    return this.records.get(id)
  }

  /** Every record, oldest first. */
  all (): TaskRecord[] {
    return [...this.records.values()].sort((a, b) => a.createdAt - b.createdAt)
  }

  /** Stores a new or changed record (in memory at once, on disk before the promise resolves). */
  async save (record: TaskRecord): Promise<void> {
    const isNew = !this.records.has(record.id)
    this.records.set(record.id, record)
    const previous = this.writes.get(record.id) ?? Promise.resolve()
    const write = previous.then(async () => { await this.write(record) })
    const tracked = write.catch(() => {}).finally(() => { if (this.writes.get(record.id) === tracked) this.writes.delete(record.id) })
    this.writes.set(record.id, tracked)
    await write
    if (isNew) await this.prune()
  }

  /** Waits for pending writes (the node stops). */
  async flush (): Promise<void> {
    await Promise.all(this.writes.values())
  }

  private async write (record: TaskRecord): Promise<void> {
    // A record dropped by pruning while its write was queued stays dropped.
    if (this.records.get(record.id) == null) return
    const file = join(this.init.dir, `${record.id}.json`)
    const temporary = `${file}.${process.pid}.tmp`
    await writeFile(temporary, JSON.stringify(this.records.get(record.id)), { mode: 0o600 })
    await rename(temporary, file)
  }

  private async prune (): Promise<void> {
    const now = Date.now()
    const finished = this.all().filter(r => isTerminal(r.state))
    let excess = this.records.size - this.init.maxRecords
    for (const record of finished) {
      const old = now - record.updatedAt > this.init.maxAgeMs
      if (!old && excess <= 0) continue
      this.records.delete(record.id)
      excess--
      await rm(join(this.init.dir, `${record.id}.json`), { force: true })
    }
  }
}
