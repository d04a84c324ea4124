import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { logger } from '@libp2p/logger'
import { VERSION } from '../../version.js'
import { ANNOUNCE_TOPIC, CARD_VERSION, decodeAnnouncement, encodeAnnouncement, type Card, type Link } from './card.js'
import { isRelayed, type ClusterView } from './cluster-view.js'
import type { AnnounceSequence } from './sequence.js'
import type { Config } from '../../config/schema.js'
import type { Heartbeat } from '../../node/heartbeat.js'
import type { Swarm } from '../../node/swarm.js'
import type { InfoLog } from '../clawmatrix-node.js'
import type { ClawmatrixMetrics } from '../inspect/metrics.js'
import type { PeerId, Startable } from '@libp2p/interface'

export interface AnnouncerInit {
  config: Pick<Config, 'nodeId' | 'agents' | 'models' | 'tags' | 'toolProxy'>
  /** How often the card is published again: gossip may drop a message, state must converge anyway. */
  intervalMs: number
  /** Counts announcements sent and judged. */
  metrics?: Pick<ClawmatrixMetrics, 'announcementSent' | 'announcementReceived'>
  /** Managed clusters: this node's current certificate, carried in every card. */
  certificate?: () => unknown
}

/** Coalesces bursts of triggers (a peer subscribing, an address change) into one publish. */
const PUBLISH_DEBOUNCE_MS = 50

/**
 * Publishes this node's card on the announcement topic (at start, on any
 * change, when a peer subscribes, and every interval), a leave on a graceful
 * stop, and a gone notice for peers the heartbeat gave up on; and judges
 * every announcement that arrives, through the cluster view.
 */
export class Announcer implements Startable {
  private readonly debug = logger('clawmatrix:announcer')
  private current: Card
  private timer?: ReturnType<typeof setInterval>
  private pending?: ReturnType<typeof setTimeout>
  private started = false
  private left = false

  constructor (
    private readonly swarm: Swarm,
    private readonly view: ClusterView,
    private readonly heartbeat: Heartbeat,
    private readonly sequence: AnnounceSequence,
    private readonly init: AnnouncerInit,
    private readonly log: InfoLog
  ) {
    this.current = { ...this.describeSelf(), seq: 0 }
  }

  /** The card this node announced last. */
  get card (): Card {
    return this.current
  }

  async start (): Promise<void> {
    const { pubsub } = this.swarm.services
    pubsub.topicValidators.set(ANNOUNCE_TOPIC, this.validate)
    pubsub.subscribe(ANNOUNCE_TOPIC)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    this.swarm.addEventListener('self:peer:update', this.schedule)
    this.swarm.addEventListener('connection:open', this.schedule)
    // Links change when a peer goes away too; without this a card lists it until the next period.
    this.swarm.addEventListener('peer:disconnect', this.schedule)
    this.heartbeat.addEventListener('peer:unresponsive', this.onUnresponsive)
    this.timer = setInterval(this.schedule, this.init.intervalMs)
    this.timer.unref()
    this.started = true
    await this.publish()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    clearTimeout(this.pending)
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
    await this.send({ ...this.current, seq: this.sequence.next(), leaving: true })
  }

  /** Publishes the card now (and refreshes links and addresses). */
  async publish (): Promise<void> {
    this.current = { ...this.describeSelf(), links: await this.links(), seq: this.sequence.next() }
    await this.send(this.current)
  }

  private readonly schedule = (): void => {
    if (!this.started || this.left || this.pending != null) return
    this.pending = setTimeout(() => {
      this.pending = undefined
      void this.publish()
    }, PUBLISH_DEBOUNCE_MS)
  }

  private readonly onSubscriptionChange = (event: CustomEvent<{ subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    if (event.detail.subscriptions.some(s => s.topic === ANNOUNCE_TOPIC && s.subscribe)) this.schedule()
  }

  private readonly onUnresponsive = (event: CustomEvent<PeerId>): void => {
    void this.send({ v: CARD_VERSION, kind: 'gone', peerId: this.swarm.peerId.toString(), seq: this.sequence.next(), gonePeerId: event.detail.toString() })
  }

  private async send (announcement: Card | Parameters<typeof encodeAnnouncement>[0]): Promise<void> {
    try {
      await this.swarm.services.pubsub.publish(ANNOUNCE_TOPIC, encodeAnnouncement(announcement))
      this.init.metrics?.announcementSent(announcement.kind === 'gone' ? 'gone' : announcement.leaving === true ? 'leave' : 'card')
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
    this.init.metrics?.announcementReceived(verdict.accept ? 'accepted' : verdict.reject ? 'rejected' : 'ignored')
    if (verdict.accept) return TopicValidatorResult.Accept
    const line = `${verdict.reject ? 'rejected' : 'ignored'} announcement relayed by ${propagator}: ${verdict.reason}`
    if (verdict.quiet === true) this.debug(line)
    else this.log.warn(line)
    return verdict.reject ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }

  private describeSelf (): Omit<Card, 'seq'> {
    const { nodeId, agents, models, tags, toolProxy } = this.init.config
    return {
      v: CARD_VERSION,
      kind: 'card',
      nodeId,
      peerId: this.swarm.peerId.toString(),
      version: VERSION,
      intervalMs: this.init.intervalMs,
      addresses: this.swarm.getMultiaddrs().map(String),
      agents: agents.map(({ id, description, tags }) => ({ id, description, tags })),
      // Only what callers need: upstream URLs and key names stay on this node.
      models: models.map(({ id, provider, description, maxConcurrent, fallbacks }) => ({ id, provider, description, maxConcurrent, fallbacks })),
      tags,
      toolProxy: { enabled: toolProxy.enabled, allow: toolProxy.allow, deny: toolProxy.deny },
      links: this.current?.links ?? [],
      ...(this.init.certificate == null ? {} : { certificate: this.init.certificate() })
    }
  }

  /** Every member this node is connected to, with the addresses it knows for it: how newcomers find the rest. */
  private async links (): Promise<Link[]> {
    const self = this.swarm.peerId.toString()
    return Promise.all(this.swarm.getPeers().map(async peerId => {
      const known = await this.swarm.peerStore.get(peerId).then(p => p.addresses.map(a => a.multiaddr.toString()), () => [])
      const relayed = this.swarm.getConnections(peerId).every(c => isRelayed(c.remoteAddr.toString()))
      return { peerId: peerId.toString(), addresses: known.slice(0, 16), relayed }
    })).then(links => links.filter(l => l.peerId !== self))
  }
}
