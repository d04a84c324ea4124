/**
 * A cap on the bytes each member may send through this relay per minute
 * (`limits.relayedBytesPerMemberPerMinute`): a member's circuits are cut
 * while it is over, until the next minute. Bytes are charged to the member
 * that sent them, so nobody can make another member go over by flooding it.
 *
 * Circuit relay v2's own limits (`reservations.defaultDataLimit` and
 * `defaultDurationLimit`) are per relayed connection, not per member: each
 * circuit starts with a fresh allowance, a member opens as many as it likes,
 * and a circuit that reaches its limit ends as a clean close (docs/deploy.md).
 */

export interface RelayBudgetInit {
  /** Bytes one member may send through this relay in a minute. */
  bytesPerMinute: number
  /** Told once per member and minute when it goes over. */
  onOver?: (peerId: string, sent: number) => void
}

interface Window {
  start: number
  sent: number
  said: boolean
}

const MINUTE_MS = 60_000

export class RelayBudget {
  private readonly windows = new Map<string, Window>()
  private lastSweep = Date.now()
  /** Circuits cut since start (for /metrics). */
  cut = 0

  constructor (private readonly init: RelayBudgetInit) {}

  /** Charges `bytes` sent by `peerId`; false when the member is over its cap for this minute. */
  charge (peerId: string, bytes: number, now = Date.now()): boolean {
    this.sweep(now)
    let window = this.windows.get(peerId)
    if (window == null || now - window.start >= MINUTE_MS) this.windows.set(peerId, window = { start: now, sent: 0, said: false })
    window.sent += bytes
    if (window.sent <= this.init.bytesPerMinute) return true
    if (!window.said) {
      window.said = true
      this.init.onOver?.(peerId, window.sent)
    }
    return false
  }

  /** Members with a window open: bounded by the members active in the last minute. */
  get size (): number {
    return this.windows.size
  }

  /** Windows of members silent for a minute go: the map holds only members sending now. */
  private sweep (now: number): void {
    if (now - this.lastSweep < MINUTE_MS) return
    this.lastSweep = now
    for (const [peerId, window] of this.windows) if (now - window.start >= MINUTE_MS) this.windows.delete(peerId)
  }
}
