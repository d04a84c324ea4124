import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { DIAL_TIMEOUT_MS } from '../../node/constants.js'
import type { Card } from './card.js'
import type { ClusterView } from './cluster-view.js'
import type { Swarm } from '../../node/swarm.js'
import type { Logger, Startable } from '@libp2p/interface'

const RETRY_MIN_MS = 1_000

/**
 * Forms the mesh: every member found in a card, or in the links a card lists,
 * is dialed, directly where it listens and through a relay where it does not.
 * So a node that knows one bootstrap peer comes to know and reach them all.
 */
export class MeshConnector implements Startable {
  private readonly log: Logger
  private readonly dialing = new Set<string>()
  private readonly failures = new Map<string, { at: number, count: number, addresses: string }>()
  private controller = new AbortController()

  /** @param maxRetryMs - the longest wait before a failed member is dialed again when a card names it */
  constructor (private readonly swarm: Swarm, private readonly view: ClusterView, private readonly maxRetryMs: number) {
    this.log = swarm.logger.forComponent('clawmatrix:mesh')
  }

  start (): void {
    this.controller = new AbortController()
    this.view.addEventListener('node:updated', this.onCard)
  }

  stop (): void {
    this.view.removeEventListener('node:updated', this.onCard)
    this.controller.abort()
  }

  private readonly onCard = (event: CustomEvent<Card>): void => {
    const card = event.detail
    this.connect(card.peerId, card.addresses)
    for (const link of card.links) this.connect(link.peerId, link.addresses)
  }

  private connect (peer: string, addresses: string[]): void {
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
    if (failed != null && failed.addresses === tried && Date.now() - failed.at < Math.min(this.maxRetryMs, RETRY_MIN_MS * 2 ** failed.count)) return
    this.dialing.add(peer)
    void (async () => {
      try {
        // Circuits through this node would loop back to it.
        const usable = addresses.filter(a => !a.includes(`/p2p/${self}/p2p-circuit`)).map(a => multiaddr(a))
        await this.swarm.peerStore.merge(peerId, { multiaddrs: usable })
        const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)])
        await this.swarm.dial(peerId, { signal })
        this.failures.delete(peer)
        this.log('connected to member %p', peerId)
      } catch (err: any) {
        this.failures.set(peer, { at: Date.now(), count: (failed?.count ?? 0) + 1, addresses: tried })
        this.log('could not reach member %p yet: %s', peerId, err.message)
      } finally {
        this.dialing.delete(peer)
      }
    })()
  }
}
