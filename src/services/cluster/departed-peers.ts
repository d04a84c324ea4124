import { peerIdFromString } from '@libp2p/peer-id'
import type { ClusterView } from './cluster-view.js'
import type { Swarm } from '../../node/swarm.js'
import type { Logger, PeerId, Startable } from '@libp2p/interface'

export interface DepartedPeersInit {
  /**
   * How often every peer libp2p remembers is checked, for those no event
   * covered (a peer that never sent a card and never connected).
   *
   * @default 60_000
   */
  sweepIntervalMs?: number
  /** Peers remembered whatever happens: configured peers, this node's relays. */
  keep: (peer: PeerId) => boolean
}

export const DEFAULT_SWEEP_INTERVAL_MS = 60_000

/** The relay server's reservations, as @libp2p/circuit-relay-v2 keeps them (a retimeable signal each). */
interface RelayReservations {
  reservations: Map<PeerId, { signal: AbortSignal & { clear?: () => void } }>
}

/**
 * Forgets what libp2p keeps about a peer once it is gone: no connection is
 * left and no card of it is in the view (it left, or its card expired), and
 * it is not a configured peer or one of this node's relays.
 *
 * libp2p keeps such a peer for hours: its peer store entry (addresses,
 * protocols, metadata, tags) until it is read more than six hours later,
 * and a relay's reservation for it for two hours after the member left
 * (until then it also holds one of `maxReservations` slots, so a relay that
 * sees a thousand members come and go in two hours refuses the next). A
 * relay that members with fresh identities join and leave for months would
 * grow by several KiB for each (docs/benchmarks.md, relay churn soak).
 *
 * A reservation ends with the member's last connection: the relay could not
 * reach the member through it anyway. The peer store entry goes when the
 * card does; a peer that sent no card (an inspector) when it disconnects.
 */
export class DepartedPeers implements Startable {
  private readonly log: Logger
  private timer?: ReturnType<typeof setInterval>
  private sweeping?: Promise<void>
  /** Peers forgotten since start (for tests and status). */
  forgotten = 0

  constructor (private readonly swarm: Swarm, private readonly view: ClusterView, private readonly init: DepartedPeersInit) {
    this.log = swarm.logger.forComponent('clawmatrix:departed')
  }

  start (): void {
    this.swarm.addEventListener('peer:disconnect', this.onDisconnect)
    this.view.addEventListener('node:left', this.onLeft)
    this.timer = setInterval(() => { void this.sweep() }, this.init.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.swarm.removeEventListener('peer:disconnect', this.onDisconnect)
    this.view.removeEventListener('node:left', this.onLeft)
    await this.sweeping
  }

  /** Checks every peer libp2p remembers now, and forgets those that are gone. */
  async sweep (): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        for (const peer of [...this.reservations()?.keys() ?? []]) this.endReservation(peer)
        for (const { id } of await this.swarm.peerStore.all()) await this.forget(id)
      } catch (err: any) {
        this.log('sweep failed: %s', err.message)
      } finally {
        this.sweeping = undefined
      }
    })()
    await this.sweeping
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    this.endReservation(event.detail)
    void this.forget(event.detail)
  }

  private readonly onLeft = (event: CustomEvent<{ card: { peerId: string } }>): void => {
    // Still connected: its disconnect comes later and forgets it then.
    void this.forget(peerIdFromString(event.detail.card.peerId))
  }

  private gone (peer: PeerId): boolean {
    return !peer.equals(this.swarm.peerId) &&
      this.swarm.getConnections(peer).length === 0 &&
      this.view.card(peer.toString()) == null &&
      !this.init.keep(peer)
  }

  private async forget (peer: PeerId): Promise<void> {
    if (!this.gone(peer)) return
    try {
      await this.swarm.peerStore.delete(peer)
      this.forgotten++
      this.log.trace('forgot %p', peer)
    } catch (err: any) {
      this.log('could not forget %p: %s', peer, err.message)
    }
  }

  /** A reservation is void once its member has no connection here: the relay could not reach it. */
  private endReservation (peer: PeerId): void {
    const reservations = this.reservations()
    const reservation = reservations?.get(peer)
    if (reservation == null || this.swarm.getConnections(peer).length > 0) return
    reservation.signal.clear?.()
    reservations!.delete(peer)
  }

  private reservations (): RelayReservations['reservations'] | undefined {
    return (this.swarm.services.relay as RelayReservations | undefined)?.reservations
  }
}
