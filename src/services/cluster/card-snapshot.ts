import { setMaxListeners } from 'node:events'
import { peerIdFromString } from '@libp2p/peer-id'
import { ANNOUNCE_TOPIC, decodeAnnouncement, MAX_CARD_BYTES } from './card.js'
import { EXPIRY_PERIODS, MAX_SEQ_REMEMBERED, type ClusterView } from './cluster-view.js'
import { verifyAnnouncement, type SignedAnnouncement } from './signed-announcement.js'
import { PROTOCOL_PREFIX, REQUEST_TIMEOUT_MS } from '../wire/constants.js'
import { MalformedFrameError, RemoteError } from '../wire/errors.js'
import { FrameStream } from '../wire/frame-stream.js'
import { serveInbound } from '../wire/inbound.js'
import { protocolId } from '../wire/protocol-id.js'
import { WakefulDeadline } from '../../node/wakeful-deadline.js'
import type { AnnouncementVerdict } from './announcer.js'
import type { MeshPeer } from '@libp2p/gossipsub'
import type { InfoLog } from '../../node/logging.js'
import type { Swarm } from '../../node/swarm.js'
import type { Frame } from '../wire/frame.js'
import type { Connection, Logger, PeerId, Startable, Stream } from '@libp2p/interface'

/**
 * `/clawmatrix/cards/1.0.0`: every card a member holds, in one exchange
 * (docs/protocol.md). A node asks the peers its gossip goes through (its
 * configured peers and chosen relays) when the gossip connection opens,
 * and again for what arrived since once gossipsub grafted it, instead of
 * waiting for every member to publish again.
 */
export const CARD_SNAPSHOT_PROTOCOL = protocolId(PROTOCOL_PREFIX, 'cards', '1.0.0')

/** A card frame: the largest card, base64 (4/3), and the envelope's fields. */
const MAX_CARD_FRAME_BYTES = 2 * MAX_CARD_BYTES
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** Failed: the snapshot was larger than this node takes (`maxCards`, `maxBytes`). */
export class CardSnapshotTooLargeError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'CardSnapshotTooLargeError'
  }
}

/** Failed: the snapshot did not end within `timeoutMs`. */
export class CardSnapshotTimeoutError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'CardSnapshotTimeoutError'
  }
}

/** What the snapshots count; the node's metrics (src/services/inspect) implement it. */
export interface CardSnapshotMetrics {
  snapshotCardReceived(verdict: AnnouncementVerdict): void
  snapshotServed(cards: number): void
}

export interface CardSnapshotComponents {
  swarm: Swarm
  view: ClusterView
  /** This node's card as it signed it, and when it was published; undefined before the first card and after the leave. */
  ownCard(): Promise<{ signed: SignedAnnouncement, at: number } | undefined>
  /** Whether this node's gossip goes through `peer` (a configured peer, a chosen relay): only those are asked. */
  isGossipPeer(peer: PeerId): boolean
  /** A peer by name, for log lines. */
  nameOf(peerId: string): string
  log: InfoLog
  metrics?: CardSnapshotMetrics
}

export interface CardSnapshotInit {
  /**
   * Longest one exchange may take, either side. A wakeful deadline
   * (docs/protocol.md, "Deadlines"): time this process spent blocked does
   * not fail a snapshot whose answer had already arrived.
   *
   * @default 10_000
   */
  timeoutMs?: number
  /**
   * Most cards one snapshot carries, and takes: as many peers as the view
   * remembers sequence numbers of.
   *
   * @default 4096
   */
  maxCards?: number
  /**
   * Most frame bytes one snapshot carries, and takes.
   *
   * @default 16 MiB
   */
  maxBytes?: number
  /**
   * Snapshots served at once per connection.
   *
   * @default 2
   */
  maxInboundStreams?: number
}

/** What one snapshot brought. */
export interface CardSnapshotResult {
  cards: number
  accepted: number
  ignored: number
  refused: number
  /** The server's clock when it listed its cards: `since` for the next ask. */
  at: number
}

export interface CardSnapshotOptions {
  /** Only cards the peer received at or after this time on its clock (an earlier result's `at`). */
  since?: number
  signal?: AbortSignal
}

export interface CardSnapshots extends Startable {
  /** Asks `peer` for the cards it holds and applies them to the view, each checked as gossip would be. */
  fetch(peer: PeerId, options?: CardSnapshotOptions): Promise<CardSnapshotResult>
}

export function cardSnapshots (components: CardSnapshotComponents, init: CardSnapshotInit = {}): CardSnapshots {
  return new CardSnapshotService(components, init)
}

/** Per gossip peer while connected: the snapshot under way, the server time of the last one, and whether a graft wants what came since. */
interface PeerSnapshots {
  running?: Promise<void>
  at?: number
  wantsMore: boolean
}

class CardSnapshotService implements CardSnapshots {
  private readonly log: Logger
  private readonly timeoutMs: number
  private readonly maxCards: number
  private readonly maxBytes: number
  private readonly maxInboundStreams: number
  private readonly peers = new Map<string, PeerSnapshots>()
  private controller = new AbortController()
  private started = false

  constructor (private readonly components: CardSnapshotComponents, init: CardSnapshotInit) {
    this.log = components.swarm.logger.forComponent('clawmatrix:card-snapshot')
    this.timeoutMs = init.timeoutMs ?? 10_000
    this.maxCards = init.maxCards ?? MAX_SEQ_REMEMBERED
    this.maxBytes = init.maxBytes ?? 16 * 2 ** 20
    this.maxInboundStreams = init.maxInboundStreams ?? 2
  }

  async start (): Promise<void> {
    this.controller = new AbortController()
    setMaxListeners(Infinity, this.controller.signal)
    await this.components.swarm.handle(CARD_SNAPSHOT_PROTOCOL, this.onStream, {
      maxInboundStreams: this.maxInboundStreams,
      maxOutboundStreams: this.maxInboundStreams,
      runOnLimitedConnection: true
    })
    const { pubsub } = this.components.swarm.services
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.addEventListener('gossipsub:graft', this.onGraft)
    this.components.swarm.addEventListener('peer:disconnect', this.onDisconnect)
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    const { pubsub } = this.components.swarm.services
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.removeEventListener('gossipsub:graft', this.onGraft)
    this.components.swarm.removeEventListener('peer:disconnect', this.onDisconnect)
    // Ends the exchanges under way, both ways.
    this.controller.abort(new Error('the node is stopping'))
    this.peers.clear()
    await this.components.swarm.unhandle(CARD_SNAPSHOT_PROTOCOL)
  }

  async fetch (peer: PeerId, options: CardSnapshotOptions = {}): Promise<CardSnapshotResult> {
    // One deadline for the whole exchange, dial to end frame; the node stopping or the caller's signal ends it too.
    const stopping = options.signal == null ? this.controller.signal : AbortSignal.any([this.controller.signal, options.signal])
    const deadline = new WakefulDeadline(this.timeoutMs, { signal: stopping })
    const { signal } = deadline
    const name = this.components.nameOf(peer.toString())
    const result: CardSnapshotResult = { cards: 0, accepted: 0, ignored: 0, refused: 0, at: 0 }
    const refusals: string[] = []
    let frames: FrameStream | undefined
    try {
      const stream = await this.components.swarm.dialProtocol(peer, CARD_SNAPSHOT_PROTOCOL, { signal, runOnLimitedConnection: true })
      frames = new FrameStream(stream, { maxFrameBytes: MAX_CARD_FRAME_BYTES })
      await frames.write(await this.request(options.since), { signal })
      let bytes = 0
      while (true) {
        const frame = await frames.read({ signal })
        if (frame.type === 'end') {
          result.at = typeof frame.at === 'number' && Number.isFinite(frame.at) ? frame.at : Date.now()
          break
        }
        if (frame.type === 'error') throw new RemoteError(String(frame.code ?? 'unknown'), `${name}: ${String(frame.message ?? 'unspecified error')}`)
        if (frame.type !== 'card') continue
        result.cards++
        bytes += frame.data == null ? 0 : String(frame.data).length
        if (result.cards > this.maxCards || bytes > this.maxBytes) {
          throw new CardSnapshotTooLargeError(`the card snapshot from ${name} holds more than ${this.maxCards} cards or ${this.maxBytes} bytes`)
        }
        const verdict = await this.apply(frame)
        this.components.metrics?.snapshotCardReceived(verdict.verdict)
        if (verdict.verdict === 'accepted') result.accepted++
        else if (verdict.verdict === 'ignored') result.ignored++
        else {
          result.refused++
          refusals.push(verdict.reason)
        }
      }
      await frames.close()
    } catch (err: any) {
      frames?.abort(err)
      if (deadline.expired) throw new CardSnapshotTimeoutError(`the card snapshot from ${name} did not end within ${this.timeoutMs} ms`)
      throw err
    } finally {
      deadline.clear()
      if (refusals.length > 0) {
        this.components.log.warn(`refused ${refusals.length} of ${result.cards} cards in the card snapshot from ${name}: ${refusals[0]}` +
          (refusals.length > 1 ? ` (and ${refusals.length - 1} more)` : ''))
      }
    }
    this.log('snapshot from %s: %d cards, %d new, %d known, %d refused', name, result.cards, result.accepted, result.ignored, result.refused)
    return result
  }

  /**
   * The ask. A first one carries this node's own card: the peer learns who
   * is asking in the same exchange, before any request of this node's can
   * reach it (its own gossip takes a moment longer), so the peer's audit,
   * tasks and errors name this node from the start.
   */
  private async request (since?: number): Promise<Frame> {
    if (since != null) return { type: 'cards', since }
    const own = await this.components.ownCard()
    return own == null ? { type: 'cards' } : { type: 'cards', card: cardFrame(own.signed, Math.max(0, Date.now() - own.at)) }
  }

  /** The asker's own card, when its ask carries one: judged as any card of a snapshot, and it must be the asker's. */
  private async applyAskersCard (request: Frame, asker: PeerId): Promise<void> {
    const frame = request.card
    if (frame == null || typeof frame !== 'object' || Array.isArray(frame)) return
    const card = frame as Frame
    const from = typeof card.from === 'string' ? card.from : ''
    let verdict: { verdict: AnnouncementVerdict, reason: string }
    if (from !== Buffer.from(asker.toMultihash().bytes).toString('base64')) {
      verdict = { verdict: 'rejected', reason: 'the card it carried is not its own' }
    } else {
      verdict = await this.apply(card)
    }
    this.components.metrics?.snapshotCardReceived(verdict.verdict)
    if (verdict.verdict === 'rejected') {
      this.components.log.warn(`refused the card in the card snapshot request from ${this.components.nameOf(asker.toString())}: ${verdict.reason}`)
    }
  }

  /**
   * One card of a snapshot, checked as the topic validator checks gossip:
   * the publisher's signature (the peer passing it on could have altered
   * it), then the view's rules (signed by the peer it describes, newer than
   * the last, the right shape, a valid certificate in a managed cluster).
   */
  private async apply (frame: Frame): Promise<{ verdict: AnnouncementVerdict, reason: string }> {
    const { view } = this.components
    let signed: SignedAnnouncement
    let card
    try {
      signed = {
        from: bytesField(frame, 'from'),
        data: bytesField(frame, 'data'),
        seqno: bytesField(frame, 'seqno'),
        signature: bytesField(frame, 'signature'),
        key: bytesField(frame, 'key')
      }
      card = decodeAnnouncement(signed.data)
    } catch (err: any) {
      return { verdict: 'rejected', reason: err.message }
    }
    if (card.kind !== 'card' || card.leaving === true) return { verdict: 'rejected', reason: `a ${card.kind === 'card' ? 'leave' : card.kind} notice where only cards belong` }
    // Before the signature, which costs more: a card this node has (or had) already changes nothing.
    if (!view.isNewer(card.peerId, card.seq)) return { verdict: 'ignored', reason: 'known' }
    let publisher: PeerId
    try {
      publisher = await verifyAnnouncement(signed)
    } catch (err: any) {
      return { verdict: 'rejected', reason: `card for node "${card.nodeId}" (peer ${card.peerId}) carries ${err.message}` }
    }
    const ageMs = typeof frame.ageMs === 'number' && Number.isSafeInteger(frame.ageMs) && frame.ageMs > 0 ? frame.ageMs : 0
    // Expiry counts from when the peer received it: passing a card on does not make it younger.
    if (ageMs >= EXPIRY_PERIODS * card.intervalMs) return { verdict: 'ignored', reason: 'expired' }
    const verdict = view.applyCard(card, publisher.toString(), { source: 'snapshot', signed }, Date.now() - ageMs)
    if (verdict.accept) return { verdict: 'accepted', reason: '' }
    return { verdict: verdict.reject ? 'rejected' : 'ignored', reason: verdict.reason }
  }

  /** Serves one snapshot: this node's card first (it names the sender), then every card the view holds. */
  private readonly onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    await serveInbound(stream, connection, { maxFrameBytes: MAX_CARD_FRAME_BYTES, requestTimeoutMs: REQUEST_TIMEOUT_MS, log: this.log }, async (frames, request) => {
      if (request.type !== 'cards') throw new MalformedFrameError(`expected a "cards" request, got "${request.type}"`)
      const since = typeof request.since === 'number' && Number.isFinite(request.since) ? request.since : undefined
      await this.applyAskersCard(request, connection.remotePeer)
      // The writes wait for the asker to read (backpressure): one wakeful deadline for all of them.
      const deadline = new WakefulDeadline(this.timeoutMs, { signal: this.controller.signal })
      const { signal } = deadline
      let sent = 0
      try {
        const at = Date.now()
        const asker = connection.remotePeer.toString()
        const own = await this.components.ownCard()
        const cards = [
          ...(own != null && (since == null || own.at >= since) ? [{ signed: own.signed, receivedAt: own.at }] : []),
          ...this.components.view.signedCards(since).filter(c => c.peerId !== asker)
        ]
        let bytes = 0
        for (const { signed, receivedAt } of cards) {
          if (sent >= this.maxCards || bytes >= this.maxBytes) break
          const frame = cardFrame(signed, Math.max(0, at - receivedAt))
          bytes += frame.data.length
          await frames.write(frame, { signal })
          sent++
        }
        await frames.write({ type: 'end', at, count: sent }, { signal })
        await frames.close()
      } catch (err) {
        if (deadline.expired) throw new CardSnapshotTimeoutError(`${this.components.nameOf(connection.remotePeer.toString())} did not take the card snapshot within ${this.timeoutMs} ms (${sent} cards sent)`)
        throw err
      } finally {
        deadline.clear()
      }
      this.components.metrics?.snapshotServed(sent)
    })
  }

  private readonly onSubscriptionChange = (event: CustomEvent<{ peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    const { peerId, subscriptions } = event.detail
    if (!subscriptions.some(s => s.topic === ANNOUNCE_TOPIC && s.subscribe)) return
    if (!this.components.isGossipPeer(peerId) || this.peers.has(peerId.toString())) return
    this.take(peerId)
  }

  /**
   * Gossipsub forwards a card only to the peers in its mesh. Between the
   * snapshot and the graft, cards reached the peer but not this node: asked
   * for again, only those.
   */
  private readonly onGraft = (event: CustomEvent<MeshPeer>): void => {
    const { topic } = event.detail
    if (topic !== ANNOUNCE_TOPIC) return
    const peerId = peerIdFromString(event.detail.peerId)
    if (!this.components.isGossipPeer(peerId)) return
    const state = this.peers.get(event.detail.peerId)
    if (state == null) this.take(peerId)
    else if (state.running != null) state.wantsMore = true
    else if (state.at != null) this.take(peerId, state.at)
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    this.peers.delete(event.detail.toString())
  }

  /** Takes a snapshot from a gossip peer in the background (what it received since `since` when given); one at a time per peer. */
  private take (peer: PeerId, since?: number): void {
    if (!this.started) return
    const key = peer.toString()
    const state: PeerSnapshots = this.peers.get(key) ?? { wantsMore: false }
    this.peers.set(key, state)
    state.wantsMore = false
    state.running = this.fetch(peer, { since }).then(result => {
      state.running = undefined
      state.at = result.at
      if (state.wantsMore && this.peers.get(key) === state) this.take(peer, result.at)
    }, (err: Error) => {
      // Not again on this connection (a peer without the protocol, say); a new connection asks again.
      state.running = undefined
      this.log('snapshot from %s failed: %s', this.components.nameOf(key), err.message)
    })
  }
}

function cardFrame (signed: SignedAnnouncement, ageMs: number): Frame & { data: string } {
  const base64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  return {
    type: 'card',
    from: base64(signed.from),
    data: base64(signed.data),
    seqno: base64(signed.seqno),
    signature: base64(signed.signature),
    key: base64(signed.key),
    ageMs
  }
}

function bytesField (frame: Frame, name: string): Uint8Array {
  const value = frame[name]
  if (typeof value !== 'string' || value.length > MAX_CARD_FRAME_BYTES || !BASE64.test(value)) throw new MalformedFrameError(`a card frame without base64 "${name}"`)
  return new Uint8Array(Buffer.from(value, 'base64'))
}
