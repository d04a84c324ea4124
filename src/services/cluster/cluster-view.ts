import { peerIdFromString } from '@libp2p/peer-id'
import { TypedEventEmitter } from 'main-event'
import { orderCandidates, resolveModel, resolveTarget, type Candidate, type Reach, type RoutableNode } from './routing.js'
import { NodeIdConflictError, UnknownTargetError } from '../errors.js'
import { leftMessage } from '../shutdown.js'
import type { Card, GoneNotice } from './card.js'
import type { SignedAnnouncement } from './signed-announcement.js'
import type { Heartbeat } from '../../node/heartbeat.js'
import type { Membership } from '../../membership/index.js'
import type { Swarm } from '../../node/swarm.js'
import type { Connection, Logger, PeerId, Startable } from '@libp2p/interface'

/** Cards expire after this many of their sender's announce periods without a new one. */
export const EXPIRY_PERIODS = 3
/** How long a node that announced its leave is remembered, to say so to callers who still name it. */
export const LEFT_MEMORY_MS = 10 * 60_000
/** At most this many such nodes are remembered (oldest forgotten first). */
export const MAX_LEFT_REMEMBERED = 256

/** One node as this node sees it: its card, and how it is reached from here. */
export interface ClusterNode {
  nodeId: string
  peerId: string
  self: boolean
  version: string
  addresses: string[]
  agents: Card['agents']
  models: Card['models']
  tags: string[]
  toolProxy: Card['toolProxy']
  /** How it would be reached now: over the open connection, or else how a request would dial it. */
  reach: Reach
  /** The relay a relayed node is (or would be) reached through. */
  via?: { peerId: string, nodeId?: string }
  /** Whether a connection to it is open now (connections are made on demand). */
  connected: boolean
  /** The last time a connection to it was open, and how it went. */
  lastReached?: LastReached
  rttMs?: number
  lastSeen: string
  inFlight: number
  /** Other live peers that claim the same nodeId. */
  conflictsWith?: string[]
  /**
   * Set when another peer holds this node's nodeId (this node saw it first,
   * or it is this node itself): the peer id of the holder. Such a node is
   * reached only by its peer id; names, agents, models and tags route to the
   * holder, so a second claimant can never take the holder's place.
   */
  nameHeldBy?: string
}

export interface LastReached {
  /** ISO time the connection was last seen open. */
  at: string
  reach: Exclude<Reach, 'self' | 'unreachable'>
  via?: { peerId: string, nodeId?: string }
}

/** `quiet`: not worth an operator's attention (gossip delivering an older card late). */
export type Verdict = { accept: true } | { accept: false, reject: boolean, reason: string, quiet?: boolean }

/**
 * An announcement this much older than the last one from its sender is a
 * replay; anything closer is gossip reordering. Sequence numbers follow the
 * sender's clock in ms (./sequence.ts).
 */
export const REPLAY_WINDOW_MS = 60_000

export interface ClusterViewEvents {
  'node:joined': CustomEvent<Card>
  'node:updated': CustomEvent<Card>
  'node:left': CustomEvent<{ card: Card, reason: string }>
  /** Two live peers claim one nodeId; `holder` keeps it (see ClusterNode.nameHeldBy). */
  'conflict': CustomEvent<{ nodeId: string, peerIds: string[], holder: string }>
}

/**
 * resolveModel's answers are kept until the view changes (a card accepted,
 * a node gone, a connection opened or closed) and at most this long, since
 * round-trip times move without an event. Requests in flight are read live.
 */
export const MODEL_ROUTES_MAX_AGE_MS = 1_000

/** How many departed nodes the view remembers for error messages. */
const MAX_DEPARTED = 256
/**
 * The last sequence number of a peer no longer in the view is kept this
 * long and for at most this many peers (least recently announced forgotten
 * first), so a replay of its old cards is still told apart. Gossipsub's own
 * seen-cache drops exact duplicates for two minutes on top of it.
 */
export const SEQ_MEMORY_MS = 60 * 60_000
export const MAX_SEQ_REMEMBERED = 4096

export interface Departure {
  peerId: string
  /** Epoch ms. */
  at: number
  reason: string
}

/** How a card reached this node: from gossipsub, or in a snapshot another member passed on (./card-snapshot.ts). */
export type CardSource = 'gossip' | 'snapshot'

export interface CardOrigin {
  source: CardSource
  /** The card as its publisher signed it, kept to pass on in snapshots. */
  signed?: SignedAnnouncement
}

interface Entry {
  card: Card
  /** The card's peer, parsed once: a view of hundreds is described, and its connections looked up, per event. */
  peer: PeerId
  /** When the card arrived here, or at the peer that passed it on in a snapshot: expiry counts from it. */
  receivedAt: number
  /** When this node stored it (epoch ms). */
  storedAt: number
  source: CardSource
  signed?: SignedAnnouncement
}

/**
 * Every member this node knows, built from the cards it accepted. Decides
 * which cards to believe: a card must be signed by the peer it describes and
 * carry a higher sequence number than the last one seen from that peer.
 */
export class ClusterView extends TypedEventEmitter<ClusterViewEvents> implements Startable {
  private readonly log: Logger
  private readonly entries = new Map<string, Entry>()
  /** Peer ids by the nodeId their card claims, in the entries' order (the first claimant holds a name). */
  private readonly claimants = new Map<string, string[]>()
  /**
   * Kept after a node leaves or expires, so its old cards stay replays
   * (bounded: SEQ_MEMORY_MS, MAX_SEQ_REMEMBERED). Ordered by when each was
   * last set, oldest first.
   */
  private readonly lastSeq = new Map<string, { seq: number, at: number }>()
  private readonly inFlight = new Map<string, number>()
  /** When the last request to each peer ended (epoch ms); the idle closer reads it. */
  private readonly lastWorkAt = new Map<string, number>()
  private readonly lastReached = new Map<string, { at: number, reach: 'direct' | 'relayed', via?: string }>()
  private readonly reportedConflicts = new Set<string>()
  /** nodeId -> when it announced its leave (a graceful stop), until it is back or forgotten. */
  private readonly left = new Map<string, { at: number, peerId: string }>()
  /** Nodes that left, newest last, so an error can say when and why (bounded: MAX_DEPARTED). */
  private readonly departed = new Map<string, Departure>()
  private timer?: ReturnType<typeof setInterval>
  private started = false
  /** resolveModel's answers by model, for the card `self` had then (see MODEL_ROUTES_MAX_AGE_MS). */
  private readonly modelRoutes = new Map<string, { at: number, candidates: Candidate[] }>()
  private modelRoutesSelf?: Card

  /**
   * @param self - this node's own card (./local-card.ts), listed first
   * @param sweepIntervalMs - how often expired cards are dropped
   * @param membership - a managed cluster's certificates: a card is believed only with a valid one
   * for its signer, and the node's name and tags come from it
   */
  constructor (
    private readonly swarm: Swarm,
    private readonly heartbeat: Heartbeat,
    private readonly self: { readonly current: Card },
    private readonly sweepIntervalMs: number,
    private readonly membership?: Pick<Membership, 'accept' | 'certificateOf' | 'nameOf'>
  ) {
    super()
    this.log = swarm.logger.forComponent('clawmatrix:cluster')
  }

  start (): void {
    this.started = true
    this.timer = setInterval(() => { this.expire(Date.now()) }, this.sweepIntervalMs)
    this.timer.unref()
    this.swarm.addEventListener('connection:open', this.onConnection)
    this.swarm.addEventListener('connection:close', this.onConnection)
  }

  stop (): void {
    this.started = false
    clearInterval(this.timer)
    this.swarm.removeEventListener('connection:open', this.onConnection)
    this.swarm.removeEventListener('connection:close', this.onConnection)
  }

  private readonly onConnection = (event: CustomEvent<Connection>): void => {
    const connection = event.detail
    const address = connection.remoteAddr.toString()
    const relayed = isRelayed(address)
    this.modelRoutes.clear()
    this.lastReached.set(connection.remotePeer.toString(), { at: Date.now(), reach: relayed ? 'relayed' : 'direct', via: relayed ? relayOf(address) : undefined })
  }

  /**
   * Applies a card signed by `signer`, received from the announcement topic
   * or in a snapshot: the same checks either way.
   */
  applyCard (card: Card, signer: string, origin: CardOrigin = { source: 'gossip' }, now = Date.now()): Verdict {
    if (card.peerId !== signer) {
      return { accept: false, reject: true, reason: `card for peer ${card.peerId} (node "${card.nodeId}") was signed by another peer, ${signer}` }
    }
    if (this.membership != null) {
      // Ignored, not rejected: an honest member may forward a card before it learns of a revocation.
      let certified
      try {
        certified = this.membership.accept(card.certificate, signer, now)
      } catch (err: any) {
        return { accept: false, reject: false, reason: err.message }
      }
      if (card.nodeId !== certified.nodeId) {
        return { accept: false, reject: false, reason: `card of peer ${signer} names it "${card.nodeId}", but its certificate names it "${certified.nodeId}"` }
      }
      card = { ...card, tags: certified.tags }
    }
    const previous = this.entries.get(signer)
    if (origin.source === 'gossip' && previous?.source === 'snapshot' && previous.card.seq === card.seq) {
      // Known from a snapshot, now arriving by gossip: accepted once more (nothing changes),
      // so gossipsub forwards it to this node's mesh as it would have without the snapshot.
      previous.source = 'gossip'
      return { accept: true }
    }
    const stale = this.checkSequence(signer, card.seq)
    if (stale != null) return stale
    if (card.leaving === true) {
      if (previous != null) this.remove(signer, 'left')
      return { accept: true }
    }
    this.entries.set(signer, { card, peer: previous?.peer ?? peerIdFromString(signer), receivedAt: now, storedAt: Date.now(), source: origin.source, signed: origin.signed })
    if (previous == null) this.claim(card.nodeId, signer)
    else if (previous.card.nodeId !== card.nodeId) this.rename(signer, previous.card.nodeId, card.nodeId)
    this.modelRoutes.clear()
    this.left.delete(card.nodeId)
    this.checkConflict(card)
    if (previous == null) {
      this.log('node %s joined (%s)', card.nodeId, signer)
      this.safeDispatchEvent('node:joined', { detail: card })
    }
    this.safeDispatchEvent('node:updated', { detail: card })
    return { accept: true }
  }

  /**
   * Applies a peer's report that another peer stopped answering heartbeats.
   * The report proves nothing (any member can sign one about anyone): it only
   * makes this node check the peer itself, at once, over whatever path it has.
   * The peer leaves this view only if that check fails too; a fresh notice
   * while a check runs joins it, so repeating notices costs one ping.
   */
  applyGone (notice: GoneNotice, signer: string): Verdict {
    if (notice.peerId !== signer) {
      return { accept: false, reject: true, reason: `gone notice from ${notice.peerId} was signed by another peer, ${signer}` }
    }
    if (this.membership != null && this.membership.certificateOf(signer) == null) {
      return { accept: false, reject: false, reason: `gone notice from peer ${signer}, which holds no valid certificate` }
    }
    const stale = this.checkSequence(signer, notice.seq)
    if (stale != null) return stale
    const gone = notice.gonePeerId
    if (this.entries.has(gone)) {
      const reporter = this.nodeIdOf(signer) ?? signer
      void this.dropIfUnreachable(gone, `reported gone by ${reporter}, and this node cannot reach it either`)
    }
    return { accept: true }
  }

  /**
   * Checks whether this node still reaches `peerId` (one ping over any path,
   * see Heartbeat.check) and drops it from the view if not, unless a newer
   * card of it arrived meanwhile. Resolves whether it was dropped.
   */
  async dropIfUnreachable (peerId: string, reason: string): Promise<boolean> {
    const entry = this.entries.get(peerId)
    if (entry == null || peerId === this.swarm.peerId.toString()) return false
    const reached = await this.heartbeat.check(peerIdFromString(peerId))
    if (reached || !this.started || this.entries.get(peerId) !== entry) return false
    this.remove(peerId, reason)
    return true
  }

  /** Drops cards whose sender was silent for EXPIRY_PERIODS of its announce interval. */
  expire (now: number): void {
    for (const [peerId, entry] of this.entries) {
      if (now - entry.receivedAt > EXPIRY_PERIODS * entry.card.intervalMs) {
        this.remove(peerId, `expired: no announcement for ${Math.round((now - entry.receivedAt) / 1000)} s`)
      }
    }
    // Peers that never sent a card (an inspector, a relay before its card) are forgotten once disconnected.
    for (const peerId of this.lastReached.keys()) {
      if (!this.entries.has(peerId) && this.swarm.getConnections(peerIdFromString(peerId)).length === 0) this.lastReached.delete(peerId)
    }
    // Oldest first: stop at the first one still young. A member in the view announces, so stays young.
    for (const [peerId, last] of this.lastSeq) {
      if (now - last.at <= SEQ_MEMORY_MS) break
      if (!this.entries.has(peerId)) this.lastSeq.delete(peerId)
    }
  }

  /** Forgets a node now (its certificate was revoked or expired). */
  drop (peerId: string, reason: string): void {
    this.remove(peerId, reason)
  }

  /** When and why the node last called `nodeId` left this view, if it did and is not back. */
  departure (nodeId: string): Departure | undefined {
    return this.claimants.has(nodeId) ? undefined : this.departed.get(nodeId)
  }

  /** How many other nodes the view lists. */
  get size (): number {
    return this.entries.size
  }

  card (peerId: string): Card | undefined {
    return this.entries.get(peerId)?.card
  }

  /** Whether a card from `peerId` with this sequence number would be news (not stale, not a replay). */
  isNewer (peerId: string, seq: number): boolean {
    return seq > (this.lastSeq.get(peerId)?.seq ?? -1)
  }

  /**
   * The cards of the view as their publishers signed them, with when each
   * arrived (epoch ms); only those stored at `since` or later when given.
   * What a snapshot passes on.
   */
  signedCards (since?: number): Array<{ peerId: string, signed: SignedAnnouncement, receivedAt: number }> {
    const cards: Array<{ peerId: string, signed: SignedAnnouncement, receivedAt: number }> = []
    for (const [peerId, { signed, receivedAt, storedAt }] of this.entries) {
      if (signed != null && (since == null || storedAt >= since)) cards.push({ peerId, signed, receivedAt })
    }
    return cards
  }

  /** A peer's name: in a managed cluster the certified one, else the one its card claims. */
  nodeIdOf (peerId: string): string | undefined {
    if (peerId === this.swarm.peerId.toString()) return this.self.current.nodeId
    const certified = this.membership?.nameOf(peerId)
    if (certified != null) return certified
    const known = this.entries.get(peerId)?.card.nodeId
    if (known != null) return known
    // a node that just announced its leave: answers still in flight name it
    for (const [nodeId, left] of this.left) if (left.peerId === peerId) return nodeId
    return undefined
  }

  /**
   * When a node no longer in the view announced its leave (it is shutting
   * down or stopped), within LEFT_MEMORY_MS; undefined otherwise.
   */
  leftAt (nodeId: string, now = Date.now()): number | undefined {
    const at = this.left.get(nodeId)?.at
    return at != null && now - at <= LEFT_MEMORY_MS ? at : undefined
  }

  /** This node and every node it knows, this node first, then by nodeId. */
  nodes (): ClusterNode[] {
    const self = this.describe(this.self.current, this.swarm.peerId, Date.now())
    const others = [...this.entries.values()].map(({ card, peer, receivedAt }) => this.describe(card, peer, receivedAt))
    const all = [self, ...others.sort((a, b) => byName.compare(a.nodeId, b.nodeId))]
    for (const node of all) {
      const claimants = this.claimantsOf(node.nodeId)
      if (claimants.length < 2) continue
      node.conflictsWith = claimants.filter(peerId => peerId !== node.peerId)
      // This node first, then the entries in the order first seen: the first claimant of a name holds it.
      if (claimants[0] !== node.peerId) node.nameHeldBy = claimants[0]
    }
    return all
  }

  /**
   * The cards this node believes (not its own), in the order first seen:
   * for whoever needs the cards alone, without describing every node (nodes()).
   */
  cards (): Card[] {
    return [...this.entries.values()].map(e => e.card)
  }

  /** Whether more than one peer (this node included) claims `nodeId`: see ClusterNode.conflictsWith. */
  contested (nodeId: string): boolean {
    return this.claimantsOf(nodeId).length > 1
  }

  /** The peers that claim a name: this node first if it does, then the others in the order first seen. */
  private claimantsOf (nodeId: string): string[] {
    const others = this.claimants.get(nodeId) ?? []
    const self = this.self.current
    return self.nodeId === nodeId ? [self.peerId, ...others] : others
  }

  private claim (nodeId: string, peerId: string): void {
    const claimants = this.claimants.get(nodeId)
    if (claimants == null) this.claimants.set(nodeId, [peerId])
    else claimants.push(peerId)
  }

  private unclaim (nodeId: string, peerId: string): void {
    const claimants = this.claimants.get(nodeId)?.filter(p => p !== peerId) ?? []
    if (claimants.length === 0) this.claimants.delete(nodeId)
    else this.claimants.set(nodeId, claimants)
  }

  /** A peer's card now claims another name: it takes its place among that name's claimants by when its entry was first seen. */
  private rename (peerId: string, from: string, to: string): void {
    this.unclaim(from, peerId)
    this.claimants.set(to, [...this.entries].filter(([, e]) => e.card.nodeId === to).map(([p]) => p))
  }

  /** The entry's parsed peer id when there is one (no base58 decoding), else parsed. */
  private peerOf (peerId: string): PeerId {
    return this.entries.get(peerId)?.peer ?? peerIdFromString(peerId)
  }

  /**
   * Candidates for a peer id, an agent id, a node id or a `tags:...` target,
   * best first. A node whose name another peer holds answers to its peer id
   * only; a target that only it would match says so instead of "unknown".
   */
  resolve (target: string): Candidate[] {
    const nodes = this.nodes()
    const byPeerId = nodes.find(n => n.peerId === target.trim())
    if (byPeerId != null) {
      const { nodeId, peerId, reach, rttMs, inFlight } = byPeerId
      return [{ nodeId, peerId, reach, rttMs, inFlight }]
    }
    try {
      return this.routeAroundClaimants(nodes, routable => resolveTarget(target, routable))
    } catch (err) {
      const leftAt = err instanceof UnknownTargetError ? this.leftAt(target.trim()) : undefined
      if (leftAt == null) throw err
      throw new UnknownTargetError('target', target, `${leftMessage(target.trim(), leftAt)}; ${(err as Error).message.replace(/^unknown target "[^"]*": /, '')}`)
    }
  }

  /**
   * Nodes hosting a model, best first. Answered from a cache while the view
   * is unchanged (see MODEL_ROUTES_MAX_AGE_MS): a request does not describe
   * every node again. The list returned must not be changed.
   */
  resolveModel (model: string): Candidate[] {
    const now = performance.now()
    if (this.modelRoutesSelf !== this.self.current) {
      this.modelRoutes.clear()
      this.modelRoutesSelf = this.self.current
    }
    const cached = this.modelRoutes.get(model)
    if (cached != null && now - cached.at < MODEL_ROUTES_MAX_AGE_MS) {
      if (cached.candidates.length === 1) return cached.candidates
      return orderCandidates(cached.candidates.map(c => ({ ...c, inFlight: this.inFlight.get(c.peerId) ?? 0 })))
    }
    const candidates = this.routeAroundClaimants(this.nodes(), routable => resolveModel(model, routable))
    this.modelRoutes.set(model, { at: now, candidates })
    return candidates
  }

  private routeAroundClaimants (nodes: ClusterNode[], route: (nodes: RoutableNode[]) => Candidate[]): Candidate[] {
    const claimants = nodes.filter(n => n.nameHeldBy != null)
    try {
      return route(nodes.filter(n => n.nameHeldBy == null))
    } catch (err) {
      if (!(err instanceof UnknownTargetError) || claimants.length === 0) throw err
      let matched: Candidate[]
      try {
        matched = route(claimants)
      } catch {
        throw err
      }
      const claimant = nodes.find(n => n.peerId === matched[0]?.peerId)!
      throw new NodeIdConflictError(claimant.nodeId, claimant.nameHeldBy!, claimant.peerId)
    }
  }

  /** Counts a request in flight to `peerId` until the returned function is called. */
  track (peerId: string): () => void {
    this.inFlight.set(peerId, (this.inFlight.get(peerId) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      if (this.entries.has(peerId)) this.lastWorkAt.set(peerId, Date.now())
      const left = (this.inFlight.get(peerId) ?? 1) - 1
      if (left <= 0) this.inFlight.delete(peerId)
      else this.inFlight.set(peerId, left)
    }
  }

  /** Whether work runs to `peerId` now, and when the last of it ended: the idle closer's input. */
  workWith (peerId: string): { busy: boolean, at?: number } {
    return { busy: (this.inFlight.get(peerId) ?? 0) > 0, at: this.lastWorkAt.get(peerId) }
  }

  /** How this node reaches a peer over the connections open right now, if any. */
  connectionTo (peerId: string): { reach: Reach, via?: { peerId: string, nodeId?: string } } {
    if (peerId === this.swarm.peerId.toString()) return { reach: 'self' }
    const connections = this.swarm.getConnections(this.peerOf(peerId)).filter(c => c.status === 'open')
    if (connections.some(c => !isRelayed(c.remoteAddr.toString()))) return { reach: 'direct' }
    const relayed = connections[0]
    if (relayed == null) return { reach: 'unreachable' }
    return { reach: 'relayed', via: this.relayNamed(relayOf(relayed.remoteAddr.toString())) }
  }

  /**
   * How this node reaches a peer: over the open connection if there is one;
   * otherwise how a request would dial it from its card: directly where it
   * listens, else through a relay it holds a reservation on (one this node
   * is connected to first), else not at all.
   */
  reachOf (peerId: string): { reach: Reach, via?: { peerId: string, nodeId?: string }, connected: boolean } {
    const now = this.connectionTo(peerId)
    if (now.reach !== 'unreachable') return { ...now, connected: now.reach !== 'self' }
    const addresses = this.entries.get(peerId)?.card.addresses ?? []
    if (addresses.some(a => !isRelayed(a))) return { reach: 'direct', connected: false }
    const relays = addresses.map(relayOf).filter((r): r is string => r != null && r !== this.swarm.peerId.toString())
    const relay = relays.find(r => this.swarm.getConnections(this.peerOf(r)).length > 0) ?? relays[0]
    if (relay == null) return { reach: 'unreachable', connected: false }
    return { reach: 'relayed', via: this.relayNamed(relay), connected: false }
  }

  private relayNamed (peerId: string | undefined): { peerId: string, nodeId?: string } | undefined {
    return peerId == null ? undefined : { peerId, nodeId: this.nodeIdOf(peerId) }
  }

  private describe (card: Card, peer: PeerId, receivedAt: number): ClusterNode {
    const { reach, via, connected } = this.reachOf(card.peerId)
    const last = this.lastReached.get(card.peerId)
    const liveness = reach === 'self' ? undefined : this.heartbeat.get(peer)
    return {
      nodeId: card.nodeId,
      peerId: card.peerId,
      self: reach === 'self',
      version: card.version,
      addresses: card.addresses,
      agents: card.agents,
      models: card.models,
      tags: card.tags,
      toolProxy: card.toolProxy,
      reach,
      via,
      connected,
      lastReached: last == null ? undefined : { at: new Date(last.at).toISOString(), reach: last.reach, via: this.relayNamed(last.via) },
      rttMs: liveness?.rttMs,
      lastSeen: new Date(Math.max(receivedAt, liveness?.lastSeen ?? 0)).toISOString(),
      inFlight: this.inFlight.get(card.peerId) ?? 0
    }
  }

  private checkSequence (signer: string, seq: number): Verdict | undefined {
    const last = this.lastSeq.get(signer)?.seq
    if (last != null && seq <= last) {
      // Ignored, not rejected: an honest peer may forward it before it learns the newer one.
      const replayed = last - seq > REPLAY_WINDOW_MS
      return { accept: false, reject: false, quiet: !replayed, reason: `${replayed ? 'replayed' : 'out-of-order'} announcement from ${this.nodeIdOf(signer) ?? signer}: sequence ${seq}, already saw ${last}` }
    }
    this.lastSeq.delete(signer)
    this.lastSeq.set(signer, { seq, at: Date.now() })
    for (const oldest of this.lastSeq.keys()) {
      if (this.lastSeq.size <= MAX_SEQ_REMEMBERED) break
      this.lastSeq.delete(oldest)
    }
    return undefined
  }

  private checkConflict (card: Card): void {
    const claimants = this.claimantsOf(card.nodeId)
    if (claimants.length < 2) return
    const key = `${card.nodeId} ${[...claimants].sort().join(' ')}`
    if (this.reportedConflicts.has(key)) return
    this.reportedConflicts.add(key)
    this.safeDispatchEvent('conflict', { detail: { nodeId: card.nodeId, peerIds: claimants, holder: claimants[0] } })
  }

  private rememberLeft (nodeId: string, peerId: string): void {
    this.left.delete(nodeId)
    this.left.set(nodeId, { at: Date.now(), peerId })
    for (const oldest of this.left.keys()) {
      if (this.left.size <= MAX_LEFT_REMEMBERED) break
      this.left.delete(oldest)
    }
  }

  private remove (peerId: string, reason: string): void {
    const entry = this.entries.get(peerId)
    if (entry == null) return
    this.entries.delete(peerId)
    this.unclaim(entry.card.nodeId, peerId)
    this.modelRoutes.clear()
    if (reason === 'left') this.rememberLeft(entry.card.nodeId, peerId)
    this.departed.delete(entry.card.nodeId)
    this.departed.set(entry.card.nodeId, { peerId, at: Date.now(), reason })
    for (const oldest of this.departed.keys()) {
      if (this.departed.size <= MAX_DEPARTED) break
      this.departed.delete(oldest)
    }
    this.lastWorkAt.delete(peerId)
    this.lastReached.delete(peerId)
    for (const key of this.reportedConflicts) if (key.includes(peerId)) this.reportedConflicts.delete(key)
    this.log('node %s left: %s', entry.card.nodeId, reason)
    this.safeDispatchEvent('node:left', { detail: { card: entry.card, reason } })
  }
}

/** The order of nodes(): String.prototype.localeCompare's, without building a collator per comparison. */
const byName = new Intl.Collator()

/** One model offered in the cluster, and the nodes that host it. */
export interface ClusterModel {
  id: string
  provider: string
  description?: string
  nodes: string[]
}

/** The models `nodes` offer, by id, each with the nodes that host it. */
export function modelsOffered (nodes: ClusterNode[]): ClusterModel[] {
  const byId = new Map<string, ClusterModel>()
  for (const node of nodes) {
    for (const model of node.models) {
      const entry = byId.get(model.id) ?? { id: model.id, provider: model.provider, description: model.description, nodes: [] }
      entry.nodes.push(node.nodeId)
      byId.set(model.id, entry)
    }
  }
  return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id))
}

export { leftMessage } from '../shutdown.js'

export function isRelayed (address: string): boolean {
  return address.includes('/p2p-circuit')
}

/** The relay's peer id in a circuit address (`.../p2p/<relay>/p2p-circuit/...`). */
export function relayOf (address: string): string | undefined {
  return address.match(/\/p2p\/(\w+)\/p2p-circuit/)?.[1]
}
