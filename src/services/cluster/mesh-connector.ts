import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { DIAL_TIMEOUT_MS } from '../../node/constants.js'
import { isRelayed, type ClusterView } from './cluster-view.js'
import { carriesWork } from './idle-closer.js'
import type { Card } from './card.js'
import type { MeshMode } from '../../config/schema.js'
import type { Swarm } from '../../node/swarm.js'
import type { Connection, Logger, PeerId, Startable } from '@libp2p/interface'

const RETRY_MIN_MS = 1_000
/** The longest wait between two reconnections to a relay that gives no reservation. */
const MAX_RESERVATION_RETRY_MS = 10 * 60_000
/** Failed dials remembered for their backoff; past it the oldest is forgotten (a link in a card names anyone). */
const MAX_FAILURES_REMEMBERED = 1024

export interface MeshConnectorInit {
  /**
   * `full`: dial every member. `on-demand`: only keep `relays` relays
   * connected (a node that does not listen), and leave every other
   * connection to the work that needs it.
   */
  mode: MeshMode
  /** Relays a node that does not listen keeps connected (its reservations). */
  relays: number
  /** Whether this node listens: then it needs no relay to be reached. */
  listens: boolean
  /** The longest wait before a failed member is dialed again when a card names it. */
  maxRetryMs: number
}

/**
 * Keeps the connections the cluster needs, and puts every member's
 * addresses in the peer store, so a request to any member can dial it.
 *
 * In `full` mode every member found in a card, or in the links a card lists,
 * is dialed. In `on-demand` mode (the default) a node that does not listen
 * keeps up to `relays` listening members connected, preferring those it
 * already holds; they are its relays (the circuit transport reserves a slot
 * on each) and, with its configured peers, the paths its gossip takes.
 */
export class MeshConnector implements Startable {
  private readonly log: Logger
  private readonly dialing = new Set<string>()
  private readonly failures = new Map<string, { at: number, count: number, addresses: string }>()
  /** The addresses last put in the peer store per member, so an unchanged card costs nothing. */
  private readonly stored = new Map<string, string>()
  /** Relays this node chose to stay connected to (on demand, not listening). */
  private readonly relays = new Set<string>()
  /** Chosen relays reconnected for want of a reservation: when last, and how often in a row (for the backoff). */
  private readonly reconnected = new Map<string, { at: number, count: number }>()
  private controller = new AbortController()
  private timer?: ReturnType<typeof setInterval>

  constructor (private readonly swarm: Swarm, private readonly view: ClusterView, private readonly init: MeshConnectorInit) {
    this.log = swarm.logger.forComponent('clawmatrix:mesh')
  }

  start (): void {
    this.controller = new AbortController()
    this.view.addEventListener('node:updated', this.onCard)
    this.view.addEventListener('node:left', this.onLeft)
    if (this.keepsRelays) {
      this.swarm.addEventListener('peer:disconnect', this.onDisconnect)
      this.timer = setInterval(() => { this.keepRelays() }, this.init.maxRetryMs)
      this.timer.unref()
    }
  }

  stop (): void {
    clearInterval(this.timer)
    this.view.removeEventListener('node:updated', this.onCard)
    this.view.removeEventListener('node:left', this.onLeft)
    this.swarm.removeEventListener('peer:disconnect', this.onDisconnect)
    this.controller.abort()
    this.stored.clear()
    this.relays.clear()
    this.reconnected.clear()
  }

  /** A relay this node keeps connected on purpose: never closed for being idle. */
  isRelay (peer: PeerId | string): boolean {
    return this.relays.has(peer.toString())
  }

  private get keepsRelays (): boolean {
    return this.init.mode === 'on-demand' && !this.init.listens && this.init.relays > 0
  }

  private readonly onCard = (event: CustomEvent<Card>): void => {
    const card = event.detail
    if (this.init.mode === 'full') {
      this.connect(card.peerId, card.addresses)
      for (const link of card.links) this.connect(link.peerId, link.addresses)
      return
    }
    void this.remember(card.peerId, card.addresses)
    if (this.keepsRelays && listensAt(card)) this.keepRelays()
  }

  private readonly onLeft = (event: CustomEvent<{ card: Card }>): void => {
    const peer = event.detail.card.peerId
    this.stored.delete(peer)
    this.failures.delete(peer)
    this.reconnected.delete(peer)
    if (this.relays.delete(peer)) this.keepRelays()
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    if (this.relays.delete(event.detail.toString())) this.keepRelays()
  }

  /** The open connections to a peer that do not go through a relay. */
  private directConnections (peer: string): Connection[] {
    return this.swarm.getConnections(peerIdFromString(peer)).filter(c => c.status === 'open' && !isRelayed(c.remoteAddr.toString()))
  }

  /**
   * Tops the relays up to `relays`: the listening members this node is
   * already connected to first, then the others in an order of their own
   * per node (rendezvous hashing), so members spread over the relays and a
   * node picks the same ones again after a restart.
   */
  private keepRelays (): void {
    if (!this.keepsRelays || this.controller.signal.aborted) return
    const self = this.swarm.peerId.toString()
    for (const peer of this.relays) {
      if (this.directConnections(peer).length === 0 && !this.dialing.has(peer)) this.relays.delete(peer)
      else this.checkReservation(peer)
    }
    // The cards alone: describing every node (view.nodes()) on each card from a listening member cost O(N) per card.
    const listening = this.view.cards().filter(c => listensAt(c) && !this.view.contested(c.nodeId))
    const connected = (card: Card): boolean => this.directConnections(card.peerId).length > 0
    const ordered = [...listening].sort((a, b) => Number(connected(b)) - Number(connected(a)) || rank(self, a.peerId).localeCompare(rank(self, b.peerId)))
    for (const card of ordered) {
      if (this.relays.size >= this.init.relays) break
      if (this.relays.has(card.peerId)) continue
      this.relays.add(card.peerId)
      this.connect(card.peerId, card.addresses.filter(a => !isRelayed(a)), () => { this.relays.delete(card.peerId) }, { direct: true })
    }
  }

  /**
   * libp2p's circuit transport asks a peer for a reservation once, when
   * identify first finds the relay protocol on a connection to it, and not
   * again until every connection to that peer has closed (its topology
   * remembers the peer until `peer:disconnect`). A reservation that failed
   * then stays failed while the peer stays connected: a timeout on a busy
   * relay, or (the usual case at 30 members) the first connection to the
   * relay went through another relay, which the transport refuses to reserve
   * over (`DoubleRelayError`), and the direct connection that followed was
   * not asked again. So a chosen relay without a reservation through it,
   * connected for a retry period, has all its connections that carry no
   * work closed: the disconnect resets the transport, keepRelays dials the
   * relay directly, and identify on that connection asks again. Repeated
   * attempts back off, up to MAX_RESERVATION_RETRY_MS. A relayed connection
   * to a relay this node reaches directly carries nothing it needs either,
   * and is closed once idle.
   */
  private checkReservation (peer: string): void {
    const connections = this.swarm.getConnections(peerIdFromString(peer)).filter(c => c.status === 'open')
    const close = (chosen: Connection[]): void => {
      for (const connection of chosen) void connection.close().catch((err: any) => { connection.abort(err) })
    }
    if (this.swarm.getMultiaddrs().some(a => a.toString().includes(`/p2p/${peer}/p2p-circuit`))) {
      this.reconnected.delete(peer)
      close(connections.filter(c => isRelayed(c.remoteAddr.toString()) && !carriesWork(c)))
      return
    }
    const now = Date.now()
    const last = this.reconnected.get(peer)
    if (last != null && now - last.at < Math.min(MAX_RESERVATION_RETRY_MS, this.init.maxRetryMs * 2 ** last.count)) return
    if (connections.length === 0 || connections.some(c => now - c.timeline.open < this.init.maxRetryMs || carriesWork(c))) return
    this.log('no reservation on relay %s after %d ms connected over %d connection(s): reconnecting', peer, now - Math.min(...connections.map(c => c.timeline.open)), connections.length)
    this.reconnected.set(peer, { at: now, count: (last?.count ?? 0) + 1 })
    close(connections)
  }

  /** Puts a member's addresses in the peer store, where a dial for work finds them. */
  private async remember (peer: string, addresses: string[]): Promise<void> {
    const self = this.swarm.peerId.toString()
    if (peer === self) return
    const joined = addresses.join(' ')
    if (this.stored.get(peer) === joined) return
    this.stored.set(peer, joined)
    try {
      await this.swarm.peerStore.merge(peerIdFromString(peer), { multiaddrs: usable(addresses, self) })
    } catch (err: any) {
      this.stored.delete(peer)
      this.log('could not store the addresses of %s: %s', peer, err.message)
    }
  }

  /**
   * Dials a member unless connected to it. `direct`: only a direct
   * connection counts and only the given addresses are dialed, never one
   * through a relay (a relay is reserved on over a direct connection only).
   */
  private connect (peer: string, addresses: string[], onFailure?: () => void, options: { direct?: boolean } = {}): void {
    const self = this.swarm.peerId.toString()
    if (peer === self || this.dialing.has(peer)) return
    let peerId
    try {
      peerId = peerIdFromString(peer)
    } catch {
      return // a link another member listed; its card schema only checked the characters
    }
    if (options.direct === true ? this.directConnections(peer).length > 0 : this.swarm.getConnections(peerId).length > 0) return
    // After a failure, wait (1 s, doubling) unless the card now offers other addresses, e.g. a new relay reservation.
    const failed = this.failures.get(peer)
    const tried = addresses.join(' ')
    if (failed != null && failed.addresses === tried && Date.now() - failed.at < Math.min(this.init.maxRetryMs, RETRY_MIN_MS * 2 ** failed.count)) {
      onFailure?.()
      return
    }
    this.dialing.add(peer)
    void (async () => {
      try {
        const multiaddrs = usable(addresses, self)
        await this.swarm.peerStore.merge(peerId, { multiaddrs })
        const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)])
        // By peer id libp2p may take any address it knows, a circuit included, and reuse a relayed connection.
        await this.swarm.dial(options.direct === true ? multiaddrs.map(a => a.getComponents().some(c => c.name === 'p2p') ? a : a.encapsulate(`/p2p/${peer}`)) : peerId, { signal })
        this.failures.delete(peer)
        this.log('connected to member %p', peerId)
      } catch (err: any) {
        this.failures.delete(peer)
        this.failures.set(peer, { at: Date.now(), count: (failed?.count ?? 0) + 1, addresses: tried })
        for (const oldest of this.failures.keys()) {
          if (this.failures.size <= MAX_FAILURES_REMEMBERED) break
          this.failures.delete(oldest)
        }
        this.log('could not reach member %p yet: %s', peerId, err.message)
        onFailure?.()
      } finally {
        this.dialing.delete(peer)
      }
    })()
  }
}

/** A member that announces an address of its own (not a circuit) listens, so it can relay. */
function listensAt (card: Card): boolean {
  return card.addresses.some(a => !isRelayed(a))
}

/** Circuits through this node would loop back to it. */
function usable (addresses: string[], self: string): ReturnType<typeof multiaddr>[] {
  return addresses.filter(a => !a.includes(`/p2p/${self}/p2p-circuit`)).flatMap(a => {
    try {
      return [multiaddr(a)]
    } catch {
      return []
    }
  })
}

function rank (self: string, peer: string): string {
  return createHash('sha256').update(`${self} ${peer}`).digest('hex')
}
