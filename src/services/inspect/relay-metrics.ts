/**
 * What a listening node does as a circuit relay, in /metrics: reservations
 * held, circuits open, bytes relayed, and requests refused by reason.
 *
 * @libp2p/circuit-relay-v2's server keeps no metrics of its own, so the HOP
 * protocol is handled here first: each HOP stream is watched (its first
 * message out is the relay's answer, its bytes after that are the relayed
 * ones) and then handed to the server's own handler unchanged. The same watch
 * charges each relayed byte to the member that sent it, when a per-member
 * cap is set (../../node/relay-budget.ts), and cuts the circuit of a member
 * over it.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import { MAX_RELAYED_CONNECTIONS_PER_PEER } from '../../node/constants.js'
import type { RelayBudget } from '../../node/relay-budget.js'
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
  private readonly cut: Counter
  private relay?: RelayServer

  constructor (private readonly swarm: Swarm, registry: Registry, private readonly budget?: RelayBudget) {
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
    this.cut = new Counter({ name: 'clawmatrix_relay_circuits_cut_total', help: 'Circuits cut because a member sent more than limits.relayedBytesPerMemberPerMinute', registers })
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
      this.watch(stream, connection.remotePeer.toString())
      await relay.onHop(stream, connection)
    }, { maxInboundStreams: MAX_RELAYED_CONNECTIONS_PER_PEER, maxOutboundStreams: MAX_RELAYED_CONNECTIONS_PER_PEER, runOnLimitedConnection: true })
  }

  stop (): void {
    this.relay = undefined
    this.circuits.clear()
  }

  /** Watches a HOP stream opened by `source`; once it relays, `destination` is the member at the other end. */
  private watch (stream: Stream, source: string): void {
    let request: string | undefined
    let destination: string | undefined
    let answered = false
    let relaying = false
    /** Charges what `sender` sent; over its cap, the circuit is cut and the bytes are not relayed. */
    const allowed = (sender: string | undefined, bytes: number): boolean => {
      this.bytes.inc(bytes)
      if (this.budget == null || sender == null || this.budget.charge(sender, bytes)) return true
      this.budget.cut++
      this.cut.inc()
      stream.abort(new Error(`${sender} is over limits.relayedBytesPerMemberPerMinute`))
      return false
    }
    const dispatchEvent = stream.dispatchEvent.bind(stream)
    stream.dispatchEvent = (event: Event): boolean => {
      if (event.type === 'message') {
        const data = (event as MessageEvent).data as { byteLength: number, subarray: () => Uint8Array }
        if (request == null) {
          request = REQUEST_TYPES[fieldOf(data.subarray(), 1) ?? -1] ?? 'unknown'
          if (request === 'connect') destination = this.connectedPeer(peerIdBytesOf(data.subarray()))
        } else if (relaying && !allowed(source, data.byteLength)) {
          return false
        }
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
      } else if (relaying && !allowed(destination, data.byteLength)) {
        return false
      }
      return send(data)
    }
  }

  /** The connected peer whose multihash is `id` (a CONNECT request's destination). */
  private connectedPeer (id: Uint8Array | undefined): string | undefined {
    if (id == null || this.budget == null) return undefined
    const peer = this.swarm.getPeers().find(p => equalBytes(p.toMultihash().bytes, id))
    return peer?.toString()
  }
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i])
}

/** HopMessage.peer.id (fields 2 then 1, both length-delimited) of a length-prefixed HopMessage. */
export function peerIdBytesOf (bytes: Uint8Array): Uint8Array | undefined {
  const peer = bytesFieldOf(bytes, 2, true)
  return peer == null ? undefined : bytesFieldOf(peer, 1, false)
}

/**
 * A varint field of a length-prefixed protobuf message: enough to read a
 * HopMessage's type (1) and status (5) without the relay's generated code.
 */
export function fieldOf (bytes: Uint8Array, field: number): number | undefined {
  const found = readField(bytes, field, true)
  return typeof found === 'number' ? found : undefined
}

/** A length-delimited field of a protobuf message (`prefixed`: the message starts with its length). */
function bytesFieldOf (bytes: Uint8Array, field: number, prefixed: boolean): Uint8Array | undefined {
  const found = readField(bytes, field, prefixed)
  return found instanceof Uint8Array ? found : undefined
}

function readField (bytes: Uint8Array, field: number, prefixed: boolean): number | Uint8Array | undefined {
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
  let end = bytes.length
  if (prefixed) {
    const length = varint()
    if (length == null) return undefined
    end = Math.min(bytes.length, at + length)
  }
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
      if ((key >>> 3) === field) return bytes.subarray(at, Math.min(end, at + size))
      at += size
    } else {
      return undefined
    }
  }
  return undefined
}
