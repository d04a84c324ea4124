/**
 * A node that is shutting down: from the moment its host starts to stop
 * (a gateway draining, SIGTERM to the standalone CLI), every protocol that
 * accepts work refuses new requests with `<nodeId> is shutting down`, while
 * work already running may finish or is cancelled by its owner.
 */
export const SHUTTING_DOWN = 'shutting-down'

export function shuttingDownMessage (nodeId: string): string {
  return `${nodeId} is shutting down`
}

/** What callers naming a node that announced its leave are told. */
export function leftMessage (nodeId: string, leftAt: number, now = Date.now()): string {
  return `${shuttingDownMessage(nodeId)} (it announced its leave ${Math.max(0, Math.round((now - leftAt) / 1000))} s ago)`
}

/** Whether this node is shutting down; shared by everything that accepts work. */
export class ShutdownState {
  private since?: number

  constructor (readonly nodeId: string) {}

  get shuttingDown (): boolean {
    return this.since != null
  }

  /** Marks the node as shutting down; false when it already was. */
  begin (now = Date.now()): boolean {
    if (this.since != null) return false
    this.since = now
    return true
  }

  /** The refusal for a new request, or undefined while the node serves. */
  readonly refusal = (): string | undefined => this.since == null ? undefined : shuttingDownMessage(this.nodeId)
}
