import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { ANNOUNCE_TOPIC, CARD_VERSION, decodeAnnouncement, encodeAnnouncement, type Card, type Link } from './card.js'
import { isRelayed, relayOf, type ClusterView } from './cluster-view.js'
import { signAnnouncement, signedAnnouncementOf, type SignedAnnouncement } from './signed-announcement.js'
import type { LocalCard } from './local-card.js'
import type { AnnounceSequence } from './sequence.js'
import { DEFAULT_CARDS_PER_INTERVAL, type MeshMode } from '../../config/schema.js'
import type { Heartbeat } from '../../node/heartbeat.js'
import type { InfoLog } from '../../node/logging.js'
import type { Swarm } from '../../node/swarm.js'
import type { Logger, PeerId, PrivateKey, Startable } from '@libp2p/interface'

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
  /** The node's peer key: signs its own card for snapshots, as gossipsub signs what it publishes. */
  privateKey: PrivateKey
  log: InfoLog
  metrics?: AnnouncementMetrics
}

export interface AnnouncerInit {
  /**
   * How often the card is published again while the cluster has at most
   * `cardsPerInterval` members: gossip may drop a message, state must
   * converge anyway, and peers expire a card after three silent periods.
   */
  intervalMs: number
  /**
   * Unchanged cards the whole cluster re-announces per `intervalMs`, at
   * most: with more members than this each node waits `members /
   * cardsPerInterval` intervals (up to MAX_PERIOD_MS), so a relay, which
   * forwards every card to every member, forwards a bounded number per
   * second and its card traffic grows with N instead of N^2.
   *
   * @default 16
   */
  cardsPerInterval?: number
  /**
   * `on-demand`: connections come and go with work, so they do not trigger a
   * card (links refresh with the next period); a subscription triggers one
   * only while this node's card has reached no peer yet (a newcomer's first
   * gossip connection): others learn cards from snapshots (./card-snapshot.ts).
   * `full`: a card on every connection change and subscription.
   */
  mode?: MeshMode
}

/** Coalesces bursts of triggers (a peer subscribing, an address change) into one publish. */
const PUBLISH_DEBOUNCE_MS = 50
/** A card lists at most this many links (the schema's limit). */
const MAX_LINKS = 1024
/**
 * The longest period a card announces, however large the cluster: a card
 * whose node vanished without a gone notice (./cluster-view.ts) is dropped
 * after three such periods at the latest. Past 320 members at the defaults
 * the cluster's rate grows again.
 */
export const MAX_PERIOD_MS = 5 * 60_000
/** A periodic card goes out between 90 % and all of its period: nodes that started together do not publish together. */
const PERIOD_JITTER = 0.1

/**
 * Publishes this node's card on the announcement topic (at start, on any
 * change, when a peer subscribes, and once per period: the heartbeat
 * interval, longer in a large cluster), a leave on a graceful stop, and a
 * gone notice for peers the heartbeat gave up on or that vanished behind
 * this relay; and judges every announcement that arrives, through the
 * cluster view.
 */
export class Announcer implements Startable {
  private readonly debug: Logger
  /** The next periodic card, armed by every card published. */
  private timer?: ReturnType<typeof setTimeout>
  private pending?: ReturnType<typeof setTimeout>
  /** When the pending publish is due (epoch ms). */
  private pendingAt = 0
  private started = false
  private left = false
  /** When this node last answered a gone notice about itself with its card (epoch ms). */
  private refutedAt = 0
  /** Whether the last card published reached a peer: until one does, a subscription publishes it again. */
  private delivered = false
  /** The last card published, as published, and its signed form once a snapshot asked for it. */
  private published?: { data: Uint8Array, seq: number, at: number, signed?: Promise<SignedAnnouncement> }

  private readonly swarm: Swarm
  private readonly view: ClusterView
  private readonly heartbeat: Heartbeat
  private readonly sequence: AnnounceSequence
  private readonly self: LocalCard
  private readonly privateKey: PrivateKey
  private readonly log: InfoLog
  private readonly metrics?: AnnouncementMetrics

  constructor (components: AnnouncerComponents, private readonly init: AnnouncerInit) {
    this.swarm = components.swarm
    this.view = components.view
    this.heartbeat = components.heartbeat
    this.sequence = components.sequence
    this.self = components.card
    this.privateKey = components.privateKey
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
    this.swarm.addEventListener('self:peer:update', this.onSelfUpdate)
    if (!this.onDemand) {
      this.swarm.addEventListener('connection:open', this.scheduleSoon)
      // Links change when a peer goes away too; without this a card lists it until the next period.
      this.swarm.addEventListener('peer:disconnect', this.scheduleSoon)
    }
    this.heartbeat.addEventListener('peer:unresponsive', this.onUnresponsive)
    this.swarm.addEventListener('peer:disconnect', this.onDisconnect)
    this.started = true
    this.refutedAt = 0
    this.left = false
    this.delivered = false
    await this.publish()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearTimeout(this.timer)
    clearTimeout(this.pending)
    const { pubsub } = this.swarm.services
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    this.swarm.removeEventListener('self:peer:update', this.onSelfUpdate)
    this.swarm.removeEventListener('connection:open', this.scheduleSoon)
    this.swarm.removeEventListener('peer:disconnect', this.scheduleSoon)
    this.heartbeat.removeEventListener('peer:unresponsive', this.onUnresponsive)
    this.swarm.removeEventListener('peer:disconnect', this.onDisconnect)
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
    this.published = undefined
    clearTimeout(this.timer)
    clearTimeout(this.pending)
    await this.send({ ...this.self.current, seq: this.sequence.next(), leaving: true })
  }

  /** Publishes the card now (and refreshes links, addresses and the period), and the next one within that period. */
  async publish (): Promise<void> {
    const card = this.self.renew(await this.links(), this.sequence.next(), this.periodMs())
    if (this.started && !this.left) {
      clearTimeout(this.timer)
      this.timer = setTimeout(this.scheduleSoon, Math.round(card.intervalMs * (1 - PERIOD_JITTER * Math.random())))
      this.timer.unref()
    }
    await this.send(card)
  }

  /**
   * The period the next card announces: the heartbeat interval, times
   * members / cardsPerInterval past that many members (this node and the
   * ones its view lists: about the same on every node once they converge).
   * A card announces the period before its successor, so a period that
   * grows or shrinks never outruns what peers expect.
   */
  periodMs (): number {
    const { intervalMs, cardsPerInterval = DEFAULT_CARDS_PER_INTERVAL } = this.init
    const members = this.view.size + 1
    return Math.max(intervalMs, Math.min(MAX_PERIOD_MS, Math.round(intervalMs * members / cardsPerInterval)))
  }

  /**
   * The card published last, signed as gossipsub signs it, and when it was
   * published: this node's entry in the snapshots it serves. Undefined
   * before the first card and once the leave is announced.
   */
  async signedCard (): Promise<{ signed: SignedAnnouncement, at: number } | undefined> {
    const published = this.published
    if (published == null) return undefined
    // Signed once per card, and only if a snapshot asks for it.
    published.signed ??= signAnnouncement(this.privateKey, published.data, BigInt(published.seq))
    return { signed: await published.signed, at: published.at }
  }

  private readonly scheduleSoon = (): void => {
    this.schedule(PUBLISH_DEBOUNCE_MS)
  }

  /**
   * This node's addresses (or protocols) changed. The event can follow the
   * card that already carries the new address (a publish reads the
   * transports' addresses, which change first): then it changes nothing.
   */
  private readonly onSelfUpdate = (): void => {
    const addresses = this.swarm.getMultiaddrs().map(String)
    const announced = this.self.current.addresses
    if (this.published != null && addresses.length === announced.length && addresses.every((a, i) => a === announced[i])) return
    this.scheduleSoon()
  }

  /** Publishes the card within `delayMs`, coalesced with any publish already due by then. */
  private schedule (delayMs: number): void {
    if (!this.started || this.left) return
    if (this.pending != null && this.pendingAt <= Date.now() + delayMs) return
    clearTimeout(this.pending)
    this.pendingAt = Date.now() + delayMs
    this.pending = setTimeout(() => {
      this.pending = undefined
      void this.publish()
    }, delayMs)
  }

  private get onDemand (): boolean {
    return (this.init.mode ?? 'on-demand') === 'on-demand'
  }

  private readonly onSubscriptionChange = (event: CustomEvent<{ peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    if (!event.detail.subscriptions.some(s => s.topic === ANNOUNCE_TOPIC && s.subscribe)) return
    // On demand this card floods once, through the first gossip peer; whoever connects later asks
    // a peer for a snapshot, and a connection opened for work needs no card.
    if (this.onDemand && this.delivered) return
    // At once, even before a dial-out node has its relay address (that card follows when it comes): the
    // peer must know who this node is before its first request arrives, or the peer's audit, tasks and
    // errors could only name it by peer id.
    this.scheduleSoon()
  }

  private readonly onUnresponsive = (event: CustomEvent<PeerId>): void => {
    this.sendGone(event.detail.toString())
  }

  /**
   * A member this node relays for (its card lists a circuit through this
   * node) lost its last connection here without a leave: killed, or its
   * network gone. This node is where its liveness shows, so it checks the
   * member at once (through another relay, if it holds one) and, if it
   * cannot reach it, drops it and tells the others, who check it too.
   * Without this a silent member would stay in the views for three of its
   * periods, minutes in a large cluster.
   */
  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    const peerId = event.detail.toString()
    const self = this.swarm.peerId.toString()
    if (this.view.card(peerId)?.addresses.some(a => relayOf(a) === self) !== true) return
    void this.view.dropIfUnreachable(peerId, 'its connection to this relay closed, and this node cannot reach it otherwise').then(dropped => {
      if (dropped) this.sendGone(peerId)
    })
  }

  private sendGone (gonePeerId: string): void {
    if (!this.started || this.left) return
    void this.send({ v: CARD_VERSION, kind: 'gone', peerId: this.swarm.peerId.toString(), seq: this.sequence.next(), gonePeerId })
  }

  /**
   * A member reported this node gone (it lost a connection to it, say):
   * those who cannot reach it drop it. Its card goes out again at once, so
   * they take it back, as a SWIM member refutes a suspicion; at most once
   * per heartbeat interval, so notices cannot make it flood cards.
   */
  private refute (): void {
    const now = Date.now()
    if (now - this.refutedAt < this.init.intervalMs) return
    this.refutedAt = now
    this.scheduleSoon()
  }

  private async send (announcement: Card | Parameters<typeof encodeAnnouncement>[0]): Promise<void> {
    const kind = announcement.kind === 'gone' ? 'gone' : announcement.leaving === true ? 'leave' : 'card'
    const data = encodeAnnouncement(announcement)
    if (kind === 'card') this.published = { data, seq: announcement.seq, at: Date.now() }
    try {
      const { recipients } = await this.swarm.services.pubsub.publish(ANNOUNCE_TOPIC, data)
      if (kind === 'card') this.delivered = recipients.length > 0
      this.metrics?.announcementSent(kind)
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
      verdict = announcement.kind === 'card'
        // Kept as signed, so a snapshot can pass it on for the receiver to check itself.
        ? this.view.applyCard(announcement, signer, { source: 'gossip', signed: signedAnnouncementOf(message) })
        : this.view.applyGone(announcement, signer)
      if (announcement.kind === 'gone' && verdict.accept && announcement.gonePeerId === this.swarm.peerId.toString()) this.refute()
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
