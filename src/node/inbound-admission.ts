/**
 * Per-IP admission of inbound WebSocket connections, before Noise: one
 * address may open `upgradesPerIpPerMinute` connections a minute and have
 * `pendingHandshakesPerIp` of them in their handshake at once. Whatever is
 * over is dropped before it costs a handshake, and said once a minute per
 * address, so a flood cannot fill the log either.
 *
 * libp2p's own guards are global (`maxIncomingPendingConnections`) or refuse
 * with a misleading `EncryptionFailedError` at the dialer and nothing at the
 * listener (`inboundConnectionThreshold`); these name the address and the
 * setting to change.
 */
import type { MultiaddrConnection } from '@libp2p/interface'
import { InboundRefusedError } from './errors.js'

export interface InboundAdmissionInit {
  /** WebSocket connections one IP address may open per minute. */
  upgradesPerIpPerMinute: number
  /** Connections from one IP address in their handshake at once. */
  pendingHandshakesPerIp: number
  /** Told about each refusal, at most once a minute per address. */
  onRefused?: (refusal: InboundRefusedError) => void
}

interface AddressState {
  windowStart: number
  opened: number
  pending: number
  refusals: number
  lastSaid: number
}

const MINUTE_MS = 60_000

export class InboundAdmission {
  private readonly addresses = new Map<string, AddressState>()
  private lastSweep = Date.now()
  /** Refusals since start, by reason (for /metrics). */
  readonly refused = { rate: 0, pending: 0 }

  constructor (private readonly init: InboundAdmissionInit) {}

  /**
   * Admits `maConn` or aborts it and throws InboundRefusedError. The returned
   * function must be called once its handshake is over, either way.
   */
  admit (maConn: MultiaddrConnection): () => void {
    const now = Date.now()
    this.sweep(now)
    const address = hostOf(maConn)
    let state = this.addresses.get(address)
    if (state == null) {
      state = { windowStart: now, opened: 0, pending: 0, refusals: 0, lastSaid: 0 }
      this.addresses.set(address, state)
    }
    if (now - state.windowStart >= MINUTE_MS) {
      state.windowStart = now
      state.opened = 0
    }
    const { upgradesPerIpPerMinute, pendingHandshakesPerIp } = this.init
    let refusal: InboundRefusedError | undefined
    if (state.opened >= upgradesPerIpPerMinute) {
      refusal = new InboundRefusedError(address, 'rate', `refused a WebSocket connection from ${address}: it opened ${state.opened} in the last minute (limits.upgradesPerIpPerMinute = ${upgradesPerIpPerMinute})`)
    } else if (state.pending >= pendingHandshakesPerIp) {
      refusal = new InboundRefusedError(address, 'pending', `refused a WebSocket connection from ${address}: ${state.pending} of its connections are still in their handshake (limits.pendingHandshakesPerIp = ${pendingHandshakesPerIp})`)
    }
    if (refusal != null) {
      this.refused[refusal.reason]++
      state.refusals++
      if (now - state.lastSaid >= MINUTE_MS) {
        state.lastSaid = now
        const more = state.refusals > 1 ? ` (${state.refusals} refused since the last such line)` : ''
        this.init.onRefused?.(Object.assign(refusal, { message: refusal.message + more }))
        state.refusals = 0
      }
      maConn.abort(refusal)
      throw refusal
    }
    state.opened++
    state.pending++
    let released = false
    return () => {
      if (released) return
      released = true
      state.pending--
    }
  }

  /** Addresses tracked now: those seen within the last minute or with a handshake pending. */
  get size (): number {
    return this.addresses.size
  }

  private sweep (now: number): void {
    if (now - this.lastSweep < MINUTE_MS) return
    this.lastSweep = now
    for (const [address, state] of this.addresses) {
      if (state.pending === 0 && now - state.windowStart >= MINUTE_MS && now - state.lastSaid >= MINUTE_MS) this.addresses.delete(address)
    }
  }
}

function hostOf (maConn: MultiaddrConnection): string {
  const [first] = maConn.remoteAddr.getComponents()
  return first?.value ?? maConn.remoteAddr.toString()
}
