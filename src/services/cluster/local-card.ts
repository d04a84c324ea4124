import { VERSION } from '../../version.js'
import { CARD_VERSION, type Card, type Link } from './card.js'
import type { Config } from '../../config/schema.js'
import type { Swarm } from '../../node/swarm.js'

export interface LocalCardInit {
  config: Pick<Config, 'nodeId' | 'agents' | 'models' | 'tags' | 'toolProxy'>
  /** How often the card is published again; peers expire it after three silent periods. */
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
    this.card = { ...this.describe([]), seq: 0 }
  }

  /** The card this node announced last (sequence 0 before the first). */
  get current (): Card {
    return this.card
  }

  /** A new card with the addresses as they are now, the given links and sequence number. */
  renew (links: Link[], seq: number): Card {
    this.card = { ...this.describe(links), seq }
    return this.card
  }

  private describe (links: Link[]): Omit<Card, 'seq'> {
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
      links,
      ...(this.init.certificate == null ? {} : { certificate: this.init.certificate() })
    }
  }
}
