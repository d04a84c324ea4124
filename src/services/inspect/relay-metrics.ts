/**
 * What a listening node does as a circuit relay, in /metrics: reservations
 * held, circuits open, bytes relayed, and requests refused by reason.
 *
 * @libp2p/circuit-relay-v2's server keeps no metrics of its own, so the HOP
 * protocol is handled here first: each HOP stream is watched (its first
 * message out is the relay's answer, its bytes after that are the relayed
 * ones) and then handed to the server's own handler unchanged.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import { MAX_RELAYED_CONNECTIONS_PER_PEER } from '../../node/constants.js'
import type { Swarm } from '../../node/swarm.js'
import type { Connection, Startable, Stream } from '@libp2p/interface'

export const HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

/** HopMessage.Type and Status of the circuit relay v2 spec. */
const REQUEST_TYPES: Record<number, string> = { 0: 'reserve', 1: 'connect' }
const STATUS_NAMES: Record<number, string> = {
  100: 'ok',
  200: 'reservation_refused',
  201: 'resource_limit_exceeded',
  202: 'permission_denied',
  203: 'connection_failed',
  204: 'no_reservation',
  400: 'malformed_message',
  401: 'unexpected_message'
}

interface RelayServer {
  reservations: Map<unknown, unknown>
  onHop(stream: Stream, connection: Connection): Promise<void>
}

export class RelayMetrics implements Startable {
  private readonly circuits = new Set<Stream>()
  private readonly answers: Counter<'request' | 'status'>
  private readonly bytes: Counter
  private relay?: RelayServer

  constructor (private readonly swarm: Swarm, registry: Registry) {
    const registers = [registry]
    const relay = (): RelayServer | undefined => this.relay
    const circuits = this.circuits
    new Gauge({
      name: 'clawmatrix_relay_reservations',
      help: 'Circuit relay reservations this node holds for members',
      registers,
      collect () { this.set(relay()?.reservations.size ?? 0) }
    })
    new Gauge({
      name: 'clawmatrix_relay_circuits_open',
      help: 'Relayed connections open through this node',
      registers,
      collect () { this.set(circuits.size) }
    })
    this.bytes = new Counter({ name: 'clawmatrix_relay_bytes_total', help: 'Bytes relayed through this node, both directions', registers })
    this.answers = new Counter({
      name: 'clawmatrix_relay_requests_total',
      help: 'Reservation and connect requests, by the relay\'s answer; any status but ok is a refusal and names its reason',
      labelNames: ['request', 'status'],
      registers
    })
  }

  async start (): Promise<void> {
    const relay = this.swarm.services.relay as RelayServer | undefined
    if (relay == null) return
    this.relay = relay
    // Same options as the server registers with (./swarm.ts), now with the watch in front.
    await this.swarm.unhandle(HOP_PROTOCOL)
    await this.swarm.handle(HOP_PROTOCOL, async (stream, connection) => {
      this.watch(stream)
      await relay.onHop(stream, connection)
    }, { maxInboundStreams: MAX_RELAYED_CONNECTIONS_PER_PEER, maxOutboundStreams: MAX_RELAYED_CONNECTIONS_PER_PEER, runOnLimitedConnection: true })
  }

  stop (): void {
    this.relay = undefined
    this.circuits.clear()
  }

  private watch (stream: Stream): void {
    let request: string | undefined
    let answered = false
    let relaying = false
    const dispatchEvent = stream.dispatchEvent.bind(stream)
    stream.dispatchEvent = (event: Event): boolean => {
      if (event.type === 'message') {
        const data = (event as MessageEvent).data as { byteLength: number, subarray: () => Uint8Array }
        if (request == null) request = REQUEST_TYPES[fieldOf(data.subarray(), 1) ?? -1] ?? 'unknown'
        else if (relaying) this.bytes.inc(data.byteLength)
      }
      return dispatchEvent(event)
    }
    const send = stream.send.bind(stream)
    stream.send = (data: any): boolean => {
      if (!answered) {
        answered = true
        const status = STATUS_NAMES[fieldOf(data.subarray(), 5) ?? -1] ?? 'unknown'
        this.answers.inc({ request: request ?? 'unknown', status })
        if (request === 'connect' && status === 'ok') {
          relaying = true
          this.circuits.add(stream)
          stream.addEventListener('close', () => { this.circuits.delete(stream) }, { once: true })
        }
      } else if (relaying) {
        this.bytes.inc(data.byteLength)
      }
      return send(data)
    }
  }
}

/**
 * A varint field of a length-prefixed protobuf message: enough to read a
 * HopMessage's type (1) and status (5) without the relay's generated code.
 */
export function fieldOf (bytes: Uint8Array, field: number): number | undefined {
  let at = 0
  const varint = (): number | undefined => {
    let value = 0
    for (let shift = 0; at < bytes.length && shift < 35; shift += 7) {
      const byte = bytes[at++]!
      value += (byte & 0x7f) * 2 ** shift
      if ((byte & 0x80) === 0) return value
    }
    return undefined
  }
  const length = varint()
  if (length == null) return undefined
  const end = Math.min(bytes.length, at + length)
  while (at < end) {
    const key = varint()
    if (key == null) return undefined
    const wire = key & 7
    if (wire === 0) {
      const value = varint()
      if ((key >>> 3) === field) return value
    } else if (wire === 2) {
      const size = varint()
      if (size == null) return undefined
      at += size
    } else {
      return undefined
    }
  }
  return undefined
}
