import { appendFile, mkdir, readFile, rename, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export const AUDIT_FILE = 'audit.jsonl'
/** The file is moved to audit.jsonl.1 (replacing the previous one) past this size: at most twice this on disk. */
export const DEFAULT_AUDIT_MAX_BYTES = 10 * 1024 * 1024

/** One piece of work this node executed for another node. Holds no message body, task, prompt or secret. */
export interface AuditEntry {
  time: string
  /** Who asked: its name (see ClawmatrixNode.callerName) and peer id. */
  caller: { name?: string, peerId: string }
  kind: 'handoff' | 'message' | 'tool' | 'task'
  /** What ran: the agent, or the tool with its command or path. */
  what: { agent?: string, tool?: string, command?: string, path?: string }
  /** ok, error, cancelled, timeout (the work's status), refused (with code) or aborted (the stream ended first). */
  outcome: string
  code?: string
  /** Frame bytes received with the request and sent back. */
  bytes: { in: number, out: number }
  durationMs: number
}

export interface AuditLogInit {
  /** Where audit.jsonl lives. */
  stateDir: string
  /** @default DEFAULT_AUDIT_MAX_BYTES */
  maxBytes?: number
  /** Counts each entry (the audit metric). */
  onEntry?(entry: AuditEntry): void
  /** The node's logger (../node/logging.ts `nodeLogger`), so a failed append says which node it was. */
  logger: ComponentLogger
}

/**
 * `<state-dir>/audit.jsonl`: one JSON line per executed call, appended in
 * order. Growth is bounded: past `maxBytes` the file becomes audit.jsonl.1
 * (one generation kept) and a new one starts.
 */
export class AuditLog {
  readonly path: string
  private readonly maxBytes: number
  private readonly log: Logger
  private writing: Promise<void> = Promise.resolve()
  private size?: number

  constructor (private readonly init: AuditLogInit) {
    this.log = init.logger.forComponent('clawmatrix:audit')
    this.path = join(init.stateDir, AUDIT_FILE)
    this.maxBytes = init.maxBytes ?? DEFAULT_AUDIT_MAX_BYTES
  }

  /** Appends one entry; never throws (a full disk must not fail the work), never reorders. */
  record (entry: AuditEntry): void {
    this.init.onEntry?.(entry)
    const line = JSON.stringify(entry) + '\n'
    this.writing = this.writing.then(async () => this.append(line)).catch((err: any) => {
      this.log.error('could not append to %s: %s', this.path, err.message)
    })
  }

  /** Resolves once every entry recorded so far is on disk. */
  async flushed (): Promise<void> {
    await this.writing
  }

  private async append (line: string): Promise<void> {
    if (this.size == null) {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 })
      this.size = await stat(this.path).then(s => s.size, () => 0)
    }
    const bytes = Buffer.byteLength(line)
    if (this.size > 0 && this.size + bytes > this.maxBytes) {
      await rename(this.path, `${this.path}.1`)
      this.size = 0
    }
    await appendFile(this.path, line, { mode: 0o600 })
    this.size += bytes
  }
}

/** Entries appended after byte `offset` (0: all); `next` is where the following read starts. A rotated file starts over. */
export async function readAudit (path: string, offset = 0): Promise<{ entries: AuditEntry[], next: number }> {
  const data = await readFile(path).catch((err: any) => {
    if (err.code === 'ENOENT') return Buffer.alloc(0)
    throw err
  })
  const start = offset > data.length ? 0 : offset
  const end = data.lastIndexOf(0x0a) + 1
  if (end <= start) return { entries: [], next: start }
  const entries = data.subarray(start, end).toString('utf8').split('\n').filter(Boolean).flatMap(line => {
    try {
      return [JSON.parse(line) as AuditEntry]
    } catch {
      return []
    }
  })
  return { entries, next: end }
}

/** One line for a terminal: time, caller, what, outcome, bytes, duration. */
export function formatAuditEntry (e: AuditEntry): string {
  const what = e.kind === 'tool'
    ? `${e.what.tool ?? '?'}${e.what.command != null ? ` ${JSON.stringify(e.what.command)}` : ''}${e.what.path != null ? ` ${e.what.path}` : ''}`
    : `${e.kind} to ${e.what.agent ?? '?'}`
  return `${e.time}  ${e.caller.name ?? '?'} (${e.caller.peerId})  ${what}  ${e.outcome}${e.code == null ? '' : ` (${e.code})`}  ` +
    `${e.bytes.in}/${e.bytes.out} B  ${e.durationMs} ms`
}
