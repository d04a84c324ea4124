import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { DIAL_TIMEOUT_MS } from '../../node/constants.js'
import { isRelayed, type ClusterView } from './cluster-view.js'
import type { Card } from './card.js'
import type { MeshMode } from '../../config/schema.js'
import type { Swarm } from '../../node/swarm.js'
import type { Logger, PeerId, Startable } from '@libp2p/interface'

const RETRY_MIN_MS = 1_000
/** Circuit relay v2's protocol to a relay: a stream of it is a circuit (or a reservation being made). */
const RELAY_HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'
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
    if (this.relays.delete(peer)) this.keepRelays()
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    if (this.relays.delete(event.detail.toString())) this.keepRelays()
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
      if (this.swarm.getConnections(peerIdFromString(peer)).length === 0 && !this.dialing.has(peer)) this.relays.delete(peer)
      else this.reopenUnreserved(peer)
    }
    const listening = this.view.nodes().filter(n => !n.self && n.conflictsWith == null).map(n => this.view.card(n.peerId)).filter((c): c is Card => c != null && listensAt(c))
    const connected = (card: Card): boolean => this.swarm.getConnections(peerIdFromString(card.peerId)).some(c => !isRelayed(c.remoteAddr.toString()))
    const ordered = [...listening].sort((a, b) => Number(connected(b)) - Number(connected(a)) || rank(self, a.peerId).localeCompare(rank(self, b.peerId)))
    for (const card of ordered) {
      if (this.relays.size >= this.init.relays) break
      if (this.relays.has(card.peerId)) continue
      this.relays.add(card.peerId)
      this.connect(card.peerId, card.addresses.filter(a => !isRelayed(a)), () => { this.relays.delete(card.peerId) })
    }
  }

  /**
   * libp2p's circuit transport asks a relay for a reservation when a
   * connection to it opens, and does not ask again while that connection
   * stays open: a reservation that failed (a timeout on a busy relay) leaves
   * this node unreachable through a relay it is connected to. A chosen relay
   * connected for a retry period without a reservation, and carrying no
   * circuit, is closed so that it is dialed again and asked again.
   */
  private reopenUnreserved (peer: string): void {
    if (this.swarm.getMultiaddrs().some(a => a.toString().includes(`/p2p/${peer}/p2p-circuit`))) return
    const connections = this.swarm.getConnections(peerIdFromString(peer)).filter(c => c.status === 'open' && !isRelayed(c.remoteAddr.toString()))
    const now = Date.now()
    if (connections.length === 0 || connections.some(c => now - c.timeline.open < this.init.maxRetryMs || c.streams.some(s => s.protocol === RELAY_HOP_PROTOCOL))) return
    this.log('no reservation on relay %s after %d ms connected: reconnecting', peer, now - Math.min(...connections.map(c => c.timeline.open)))
    for (const connection of connections) void connection.close().catch((err: any) => { connection.abort(err) })
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

  private connect (peer: string, addresses: string[], onFailure?: () => void): void {
    const self = this.swarm.peerId.toString()
    if (peer === self || this.dialing.has(peer)) return
    let peerId
    try {
      peerId = peerIdFromString(peer)
    } catch {
      return // a link another member listed; its card schema only checked the characters
    }
    if (this.swarm.getConnections(peerId).length > 0) return
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
        await this.swarm.peerStore.merge(peerId, { multiaddrs: usable(addresses, self) })
        const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)])
        await this.swarm.dial(peerId, { signal })
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
