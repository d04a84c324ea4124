import type { ByteCount, TrafficRecord } from './host-api.js'
import type { ClawmatrixNode } from '../../src/services/clawmatrix-node.js'

/** The part of a libp2p stream or connection the counter wraps. */
interface Countable {
  send(data: { byteLength: number }): boolean
  dispatchEvent(event: Event): boolean
}

/**
 * Counts what one node moves: the payload bytes of every protocol stream,
 * the bytes on its direct connections, and the announcements it publishes
 * and receives. It hooks libp2p's metrics interface (the `trackProtocolStream`
 * and `trackMultiaddrConnection` calls libp2p makes for every stream and
 * connection), the way @libp2p/prometheus-metrics counts, so it needs a node
 * created with metrics; and it must be attached before the node starts.
 */
export class TrafficCounter {
  private protocols = new Map<string, ByteCount>()
  private wire: ByteCount = { sent: 0, received: 0 }
  private published = 0
  private publishedBytes = 0
  private delivered = 0
  private deliveredBytes = 0
  private since = Date.now()
  private churn = { opened: 0, closed: 0, relayedOpened: 0, relayedClosed: 0 }

  constructor (private readonly node: ClawmatrixNode, private readonly announceTopic: string) {
    const metrics = node.swarm.metrics
    if (metrics == null) throw new Error('the node has no libp2p metrics to hook; the traffic counter needs ClawmatrixNode.create to pass `metrics` to the swarm')
    const trackStream = metrics.trackProtocolStream.bind(metrics)
    metrics.trackProtocolStream = stream => {
      const protocol = stream.protocol
      if (protocol != null) this.count(stream as unknown as Countable, () => this.protocolCount(protocol))
      trackStream(stream)
    }
    const trackConnection = metrics.trackMultiaddrConnection.bind(metrics)
    metrics.trackMultiaddrConnection = connection => {
      // A relayed connection's bytes already travel inside the relay's streams on a direct one.
      if (!isRelayed(connection.remoteAddr)) this.count(connection as unknown as Countable, () => this.wire)
      trackConnection(connection)
    }

    const { pubsub } = node.swarm.services
    const publish = pubsub.publish.bind(pubsub)
    pubsub.publish = async (topic, data) => {
      if (topic === this.announceTopic) {
        this.published++
        this.publishedBytes += data?.byteLength ?? 0
      }
      return publish(topic, data)
    }
    node.swarm.addEventListener('connection:open', event => {
      this.churn.opened++
      if (isRelayed(event.detail.remoteAddr)) this.churn.relayedOpened++
    })
    node.swarm.addEventListener('connection:close', event => {
      this.churn.closed++
      if (isRelayed(event.detail.remoteAddr)) this.churn.relayedClosed++
    })
    pubsub.addEventListener('gossipsub:message', event => {
      if (event.detail.msg.topic !== this.announceTopic) return
      this.delivered++
      this.deliveredBytes += event.detail.msg.data.byteLength
    })
  }

  reset (): void {
    this.protocols = new Map()
    this.wire = { sent: 0, received: 0 }
    this.published = this.publishedBytes = this.delivered = this.deliveredBytes = 0
    this.churn = { opened: 0, closed: 0, relayedOpened: 0, relayedClosed: 0 }
    this.since = Date.now()
  }

  read (): TrafficRecord {
    const connections = this.node.swarm.getConnections().filter(c => c.status === 'open')
    const relayed = connections.filter(c => isRelayed(c.remoteAddr)).length
    return {
      nodeId: this.node.config.nodeId,
      listen: this.node.config.listen,
      ms: Date.now() - this.since,
      protocols: Object.fromEntries(this.protocols),
      wire: { ...this.wire },
      published: this.published,
      publishedBytes: this.publishedBytes,
      delivered: this.delivered,
      deliveredBytes: this.deliveredBytes,
      connections: { direct: connections.length - relayed, relayed },
      churn: { ...this.churn }
    }
  }

  private protocolCount (protocol: string): ByteCount {
    let count = this.protocols.get(protocol)
    if (count == null) this.protocols.set(protocol, count = { sent: 0, received: 0 })
    return count
  }

  /**
   * Wraps `send` and `dispatchEvent` instead of listening for `message`: a
   * listener of its own would make the stream deliver its buffered data
   * before the protocol handler attached its reader. `current` is called on
   * every count, so a reset also applies to streams already open.
   */
  private count (target: Countable, current: () => ByteCount): void {
    const send = target.send.bind(target)
    target.send = data => {
      current().sent += data.byteLength
      return send(data)
    }
    const dispatchEvent = target.dispatchEvent.bind(target)
    target.dispatchEvent = event => {
      if (event.type === 'message') current().received += (event as Event & { data: { byteLength: number } }).data.byteLength
      return dispatchEvent(event)
    }
  }
}

function isRelayed (address: { toString(): string }): boolean {
  return address.toString().includes('/p2p-circuit')
}
