import type { AuditEntry, AuditLog } from './audit-log.js'
import type { Frame } from '../wire/frame.js'
import type { FrameStream } from '../wire/frame-stream.js'
import type { Connection } from '@libp2p/interface'

/** What the work protocols need to audit what they serve. */
export interface WorkAudit {
  log: AuditLog
  /** The caller's name: ClawmatrixNode.callerName, the one place that resolves it. */
  callerName(peerId: string): string | undefined
}

/** Requests that start work; reads of a task (task-get) and its follow-ups are not work of their own. */
const KINDS: Record<string, AuditEntry['kind']> = { handoff: 'handoff', send: 'message', tool: 'tool', 'task-submit': 'task' }

/**
 * Watches one served request: the frames written back (the final one says
 * the outcome, all of them count as bytes out) until `end()`, which records
 * the entry. Only named fields of the request are kept: never a message
 * body, a task or a file's content.
 */
export function auditServed (audit: WorkAudit, frames: FrameStream, request: Frame, connection: Connection): { end(error?: unknown): void } | undefined {
  const kind = KINDS[String(request.type)]
  if (kind == null) return undefined
  const started = Date.now()
  let out = 0
  let final: Frame | undefined
  const write = frames.write.bind(frames)
  frames.write = async (frame, options) => {
    out += Buffer.byteLength(JSON.stringify(frame))
    if (['result', 'rejected', 'delivered', 'task'].includes(String(frame.type))) final = frame
    await write(frame, options)
  }
  return {
    end (error) {
      const peerId = connection.remotePeer.toString()
      const outcome = final == null
        ? 'aborted'
        : final.type === 'rejected'
          ? 'refused'
          : final.type === 'delivered' ? 'ok' : final.type === 'task' ? `task ${String((final.task as any)?.state ?? 'accepted')}` : String(final.status ?? 'ok')
      const code = final?.type === 'rejected' ? String(final.code) : (final?.error as any)?.code ?? (error == null ? undefined : 'stream-error')
      audit.log.record({
        time: new Date(started).toISOString(),
        caller: { name: audit.callerName(peerId), peerId },
        kind,
        what: describeWhat(request),
        outcome,
        ...(code == null ? {} : { code: String(code) }),
        bytes: { in: Buffer.byteLength(JSON.stringify(request)), out },
        durationMs: Date.now() - started
      })
    }
  }
}

function describeWhat (request: Frame): AuditEntry['what'] {
  const params = (request.params ?? {}) as Record<string, unknown>
  const text = (value: unknown): string | undefined => typeof value === 'string' ? value.slice(0, 1024) : undefined
  return {
    agent: text(request.agent),
    tool: text(request.tool),
    command: request.tool === 'exec' ? text(params.command) : undefined,
    path: text(params.path)
  }
}
