import type { GossipSub, GossipSubComponents } from '@libp2p/gossipsub'
import type { Connection, PeerId } from '@libp2p/interface'

/** The internal method of @libp2p/gossipsub 17 this module wraps. */
interface OutboundStreamOpener {
  createOutboundStream(peerId: PeerId, connection: Connection): Promise<void>
}

/** Thrown at creation when the gossipsub in use no longer has the method wrapped (another version). */
export class GossipInternalsChangedError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'GossipInternalsChangedError'
  }
}

/**
 * Gossipsub (@libp2p/gossipsub 17.1) opens its outbound stream to each new
 * peer through one queue for all peers, one at a time, and each waits for
 * multistream-select's round trip and a peer store write. Until that stream
 * exists a peer hears nothing from this node: not its subscription (so the
 * peer cannot publish to it), not one forwarded message. On a relay that
 * 200 members join at once the last waited for 199 round trips with busy
 * event loops on both ends: 8 s at 50 members (docs/benchmarks.md). This
 * wrapper lets the queue hand each peer over at once and opens the streams
 * side by side, still one at a time per peer, which is what the queue
 * guarded (two at once for one peer would both pass its "already has one"
 * check and open two).
 *
 * Upstream: `GossipSub.start()` pipes `outboundInflightQueue` into
 * `await this.createOutboundStream(...)`; concurrency across peers with the
 * per-peer order kept would fix it there.
 */
export function concurrentOutboundStreams (factory: (components: GossipSubComponents) => GossipSub): (components: GossipSubComponents) => GossipSub {
  return components => {
    const pubsub = factory(components)
    const internals = pubsub as unknown as Partial<OutboundStreamOpener>
    if (typeof internals.createOutboundStream !== 'function') {
      throw new GossipInternalsChangedError('gossipsub has no createOutboundStream to open streams side by side (another @libp2p/gossipsub version?)')
    }
    const open = internals.createOutboundStream.bind(pubsub)
    /** The opening under way per peer; the next one for that peer waits for it. */
    const opening = new Map<string, Promise<void>>()
    internals.createOutboundStream = async (peerId, connection) => {
      const key = peerId.toString()
      // createOutboundStream logs its own errors; nothing is left to catch here.
      const next = (opening.get(key) ?? Promise.resolve()).then(async () => { await open(peerId, connection) }).catch(() => {})
      opening.set(key, next)
      void next.finally(() => { if (opening.get(key) === next) opening.delete(key) })
    }
    return pubsub
  }
}
