import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { ANNOUNCE_TOPIC, CARD_VERSION, decodeAnnouncement, encodeAnnouncement, type Card, type Link } from './card.js'
import { isRelayed, type ClusterView } from './cluster-view.js'
import type { LocalCard } from './local-card.js'
import type { AnnounceSequence } from './sequence.js'
import type { MeshMode } from '../../config/schema.js'
import type { Heartbeat } from '../../node/heartbeat.js'
import type { InfoLog } from '../../node/logging.js'
import type { Swarm } from '../../node/swarm.js'
import type { Logger, PeerId, Startable } from '@libp2p/interface'

export type AnnouncementKind = 'card' | 'leave' | 'gone'
export type AnnouncementVerdict = 'accepted' | 'rejected' | 'ignored'

/** What the announcer counts; the node's metrics (src/services/inspect) implement it. */
export interface AnnouncementMetrics {
  announcementSent(kind: AnnouncementKind): void
  announcementReceived(verdict: AnnouncementVerdict): void
}

export interface AnnouncerComponents {
  swarm: Swarm
  view: ClusterView
  heartbeat: Heartbeat
  sequence: AnnounceSequence
  /** This node's card, renewed on every publish. */
  card: LocalCard
  log: InfoLog
  metrics?: AnnouncementMetrics
}

export interface AnnouncerInit {
  /** How often the card is published again: gossip may drop a message, state must converge anyway. */
  intervalMs: number
  /**
   * `on-demand`: connections come and go with work, so they do not trigger a
   * card (links refresh with the next period), and a card goes out when a
   * newcomer joins, which no direct subscription would reveal. `full`: a
   * card on every connection change and subscription.
   */
  mode?: MeshMode
}

/** Coalesces bursts of triggers (a peer subscribing, an address change) into one publish. */
const PUBLISH_DEBOUNCE_MS = 50
/**
 * On demand, a newcomer learns the others from the cards they publish when
 * they see its own: at most one such card per node per this long, plus up to
 * as much again at random, so a crowd starting at once does not make every
 * node publish for each newcomer, nor all in the same instant.
 */
export const JOIN_REPUBLISH_MS = 1_000
/** A card lists at most this many links (the schema's limit). */
const MAX_LINKS = 1024

/**
 * Publishes this node's card on the announcement topic (at start, on any
 * change, when a peer subscribes, and every interval), a leave on a graceful
 * stop, and a gone notice for peers the heartbeat gave up on; and judges
 * every announcement that arrives, through the cluster view.
 */
export class Announcer implements Startable {
  private readonly debug: Logger
  private timer?: ReturnType<typeof setInterval>
  private pending?: ReturnType<typeof setTimeout>
  private joinPending?: ReturnType<typeof setTimeout>
  private lastJoinPublish = 0
  private started = false
  private left = false

  private readonly swarm: Swarm
  private readonly view: ClusterView
  private readonly heartbeat: Heartbeat
  private readonly sequence: AnnounceSequence
  private readonly self: LocalCard
  private readonly log: InfoLog
  private readonly metrics?: AnnouncementMetrics

  constructor (components: AnnouncerComponents, private readonly init: AnnouncerInit) {
    this.swarm = components.swarm
    this.view = components.view
    this.heartbeat = components.heartbeat
    this.sequence = components.sequence
    this.self = components.card
    this.log = components.log
    this.metrics = components.metrics
    this.debug = this.swarm.logger.forComponent('clawmatrix:announcer')
  }

  /** The card this node announced last. */
  get card (): Card {
    return this.self.current
  }

  async start (): Promise<void> {
    const { pubsub } = this.swarm.services
    pubsub.topicValidators.set(ANNOUNCE_TOPIC, this.validate)
    pubsub.subscribe(ANNOUNCE_TOPIC)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    this.swarm.addEventListener('self:peer:update', this.schedule)
    if (this.onDemand) {
      this.view.addEventListener('node:joined', this.onJoined)
    } else {
      this.swarm.addEventListener('connection:open', this.schedule)
      // Links change when a peer goes away too; without this a card lists it until the next period.
      this.swarm.addEventListener('peer:disconnect', this.schedule)
    }
    this.heartbeat.addEventListener('peer:unresponsive', this.onUnresponsive)
    this.timer = setInterval(this.schedule, this.init.intervalMs)
    this.timer.unref()
    this.started = true
    this.left = false
    await this.publish()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    clearTimeout(this.pending)
    clearTimeout(this.joinPending)
    this.joinPending = undefined
    this.view.removeEventListener('node:joined', this.onJoined)
    const { pubsub } = this.swarm.services
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    this.swarm.removeEventListener('self:peer:update', this.schedule)
    this.swarm.removeEventListener('connection:open', this.schedule)
    this.swarm.removeEventListener('peer:disconnect', this.schedule)
    this.heartbeat.removeEventListener('peer:unresponsive', this.onUnresponsive)
    if (!this.left) await this.leave()
    pubsub.unsubscribe(ANNOUNCE_TOPIC)
    pubsub.topicValidators.delete(ANNOUNCE_TOPIC)
    await this.sequence.save()
  }

  /**
   * Announces that this node is leaving, at once: peers drop it from their
   * view and route new work elsewhere. No card follows until a restart.
   */
  async leave (): Promise<void> {
    this.left = true
    clearInterval(this.timer)
    clearTimeout(this.pending)
    await this.send({ ...this.self.current, seq: this.sequence.next(), leaving: true })
  }

  /** Publishes the card now (and refreshes links and addresses). */
  async publish (): Promise<void> {
    await this.send(this.self.renew(await this.links(), this.sequence.next()))
  }

  private readonly schedule = (): void => {
    if (!this.started || this.left || this.pending != null) return
    this.pending = setTimeout(() => {
      this.pending = undefined
      void this.publish()
    }, PUBLISH_DEBOUNCE_MS)
  }

  private get onDemand (): boolean {
    return (this.init.mode ?? 'on-demand') === 'on-demand'
  }

  private readonly onSubscriptionChange = (event: CustomEvent<{ peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    if (!event.detail.subscriptions.some(s => s.topic === ANNOUNCE_TOPIC && s.subscribe)) return
    // On demand a member opening a connection for work already has this card; a newcomer does not.
    if (this.onDemand && this.view.card(event.detail.peerId.toString()) != null) return
    this.schedule()
  }

  private readonly onJoined = (): void => {
    if (!this.started || this.joinPending != null) return
    const wait = Math.max(PUBLISH_DEBOUNCE_MS, this.lastJoinPublish + JOIN_REPUBLISH_MS - Date.now()) + Math.random() * JOIN_REPUBLISH_MS
    this.joinPending = setTimeout(() => {
      this.joinPending = undefined
      this.lastJoinPublish = Date.now()
      this.schedule()
    }, wait)
  }

  private readonly onUnresponsive = (event: CustomEvent<PeerId>): void => {
    void this.send({ v: CARD_VERSION, kind: 'gone', peerId: this.swarm.peerId.toString(), seq: this.sequence.next(), gonePeerId: event.detail.toString() })
  }

  private async send (announcement: Card | Parameters<typeof encodeAnnouncement>[0]): Promise<void> {
    try {
      await this.swarm.services.pubsub.publish(ANNOUNCE_TOPIC, encodeAnnouncement(announcement))
      this.metrics?.announcementSent(announcement.kind === 'gone' ? 'gone' : announcement.leaving === true ? 'leave' : 'card')
    } catch (err: any) {
      this.debug('publishing %s failed: %s', announcement.kind, err.message)
    }
  }

  private readonly validate = (propagator: PeerId, message: Message): TopicValidatorResult => {
    if (message.type !== 'signed') {
      this.log.warn(`rejected an unsigned announcement relayed by ${propagator}`)
      return TopicValidatorResult.Reject
    }
    const signer = message.from.toString()
    let verdict
    try {
      const announcement = decodeAnnouncement(message.data)
      verdict = announcement.kind === 'card' ? this.view.applyCard(announcement, signer) : this.view.applyGone(announcement, signer)
    } catch (err: any) {
      verdict = { accept: false as const, reject: true, reason: `${err.message} (signed by ${signer})` }
    }
    this.metrics?.announcementReceived(verdict.accept ? 'accepted' : verdict.reject ? 'rejected' : 'ignored')
    if (verdict.accept) return TopicValidatorResult.Accept
    const line = `${verdict.reject ? 'rejected' : 'ignored'} announcement relayed by ${propagator}: ${verdict.reason}`
    if (verdict.quiet === true) this.debug(line)
    else this.log.warn(line)
    return verdict.reject ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }

  /**
   * Every member this node is connected to, for the mesh page. In a full
   * mesh also the addresses it knows for each: how newcomers find the rest.
   * On demand every card carries its own addresses, and a relay's links to
   * hundreds of members would otherwise outgrow the card's size limit.
   */
  private async links (): Promise<Link[]> {
    const self = this.swarm.peerId.toString()
    const peers = this.swarm.getPeers().filter(p => p.toString() !== self).slice(0, MAX_LINKS)
    return Promise.all(peers.map(async peerId => {
      const known = this.onDemand ? [] : await this.swarm.peerStore.get(peerId).then(p => p.addresses.map(a => a.multiaddr.toString()), () => [])
      const relayed = this.swarm.getConnections(peerId).every(c => isRelayed(c.remoteAddr.toString()))
      return { peerId: peerId.toString(), addresses: known.slice(0, 16), relayed }
    }))
  }
}
