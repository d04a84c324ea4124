import { VERSION } from '../../version.js'
import { CARD_VERSION, type Card, type Link } from './card.js'
import type { Config } from '../../config/schema.js'
import type { Swarm } from '../../node/swarm.js'

export interface LocalCardInit {
  config: Pick<Config, 'nodeId' | 'agents' | 'models' | 'tags' | 'toolProxy'>
  /** The period the first card announces (the heartbeat interval); later cards carry their own (see `renew`). */
  intervalMs: number
  /** Managed clusters: this node's current certificate, carried in every card. */
  certificate?: () => unknown
}

/**
 * This node's own card: what it offers, where it listens, whom it links to.
 * The announcer publishes it and the cluster view lists it first; it exists
 * before either, so neither needs the other to be built.
 */
export class LocalCard {
  private card: Card

  constructor (private readonly swarm: Pick<Swarm, 'peerId' | 'getMultiaddrs'>, private readonly init: LocalCardInit) {
    this.card = { ...this.describe([], init.intervalMs), seq: 0 }
  }

  /** The card this node announced last (sequence 0 before the first). */
  get current (): Card {
    return this.card
  }

  /**
   * A new card with the addresses as they are now, the given links and
   * sequence number, announcing that the next one follows within
   * `intervalMs` (peers expire it after three such periods).
   */
  renew (links: Link[], seq: number, intervalMs = this.init.intervalMs): Card {
    this.card = { ...this.describe(links, intervalMs), seq }
    return this.card
  }

  private describe (links: Link[], intervalMs: number): Omit<Card, 'seq'> {
    const { nodeId, agents, models, tags, toolProxy } = this.init.config
    return {
      v: CARD_VERSION,
      kind: 'card',
      nodeId,
      peerId: this.swarm.peerId.toString(),
      version: VERSION,
      intervalMs,
      addresses: this.swarm.getMultiaddrs().map(String),
      agents: agents.map(({ id, description, tags }) => ({ id, description, tags })),
      // Only what callers need: upstream URLs and key names stay on this node.
      models: models.map(({ id, provider, description, maxConcurrent, fallbacks }) => ({ id, provider, description, maxConcurrent, fallbacks })),
      tags,
      toolProxy: { enabled: toolProxy.enabled, allow: toolProxy.allow, deny: toolProxy.deny },
      links,
      ...(this.init.certificate == null ? {} : { certificate: this.init.certificate() })
    }
  }
}
