import type { Swarm } from '../../node/swarm.js'
import type { Connection, Logger, PeerId, Startable, Stream } from '@libp2p/interface'

/** Streams every connection carries whether or not there is work: they do not keep it open. */
const HOUSEKEEPING_PROTOCOLS = ['/meshsub/', '/floodsub/', '/ipfs/ping/', '/ipfs/id/']

/**
 * Whether a connection carries a stream other than gossip, identify and
 * ping (a relay's HOP stream is work), leaving out streams `idle` says wait
 * for work without carrying any.
 */
export function carriesWork (connection: Connection, idle?: (stream: Stream) => boolean): boolean {
  return connection.streams.some(s => !HOUSEKEEPING_PROTOCOLS.some(p => s.protocol?.startsWith(p) === true) && idle?.(s) !== true)
}

export interface IdleCloserInit {
  /** A connection this node opened, with no work for this long, is closed. */
  idleMs: number
  /** Peers whose connections stay whatever they carry: configured peers, relays. */
  keep: (peer: PeerId) => boolean
  /** When work to or from the peer last ran (epoch ms), and whether some runs now. */
  lastWork: (peer: PeerId) => { at?: number, busy: boolean }
  /**
   * Streams kept open for later work that carry none now (model streams
   * parked in the caller's pool, or waiting on the host for the next
   * request): they do not keep a connection open, or an idle kept stream
   * would hold it as long as either end keeps the stream.
   */
  idleStream?: (stream: Stream) => boolean
}

/**
 * Closes the connections this node opened for work once they have been
 * idle for `idleMs`: no request in flight or finished within that time, and
 * no stream open but gossip, identify, ping and kept model streams waiting
 * for a request (a relay's HOP stream counts as work: it carries someone's
 * circuit). Only outbound connections: the
 * side that opened a connection decides when it is done with it, so two
 * nodes never close one connection from both ends at once.
 */
export class IdleCloser implements Startable {
  private readonly log: Logger
  /** When each connection last carried a work stream; connections are owned by libp2p, so weakly. */
  private readonly lastStream = new WeakMap<Connection, number>()
  private timer?: ReturnType<typeof setInterval>

  constructor (private readonly swarm: Swarm, private readonly init: IdleCloserInit) {
    this.log = swarm.logger.forComponent('clawmatrix:idle')
  }

  start (): void {
    this.timer = setInterval(() => { this.sweep(Date.now()) }, Math.max(50, Math.min(this.init.idleMs / 4, 5_000)))
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  sweep (now: number): void {
    for (const connection of this.swarm.getConnections()) {
      if (connection.direction !== 'outbound' || connection.status !== 'open') continue
      if (carriesWork(connection, this.init.idleStream)) {
        this.lastStream.set(connection, now)
        continue
      }
      const peer = connection.remotePeer
      if (this.init.keep(peer)) continue
      const work = this.init.lastWork(peer)
      if (work.busy) continue
      const since = Math.max(connection.timeline.open, this.lastStream.get(connection) ?? 0, work.at ?? 0)
      if (now - since < this.init.idleMs) continue
      this.log('closing connection %s to %p: idle for %d ms', connection.id, peer, now - since)
      void connection.close().catch((err: any) => { connection.abort(err) })
    }
  }
}
