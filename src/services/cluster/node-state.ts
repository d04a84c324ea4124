import { peerIdFromString } from '@libp2p/peer-id'
import { pathText } from './routing.js'
import { withWakefulDeadline } from '../../node/wakeful-deadline.js'
import { whenAborted } from '../../node/when-aborted.js'
import type { ClusterView } from './cluster-view.js'
import type { Heartbeat } from '../../node/heartbeat.js'
import type { PeerDialer } from '../../node/peer-dialer.js'
import type { Swarm } from '../../node/swarm.js'
import type { PeerDescriber } from '../wire/path.js'
import type { PeerId } from '@libp2p/interface'

export interface NodeStateSources {
  view: ClusterView
  /** The configured peers and their retry state. */
  dialer?: Pick<PeerDialer, 'get'>
  heartbeat?: Pick<Heartbeat, 'get'>
}

/**
 * How errors and status name a node and say its state: from the cluster
 * view (cards, reach, departures), the configured-peer dialer (attempts,
 * last error) and the heartbeat (last answer). One place, so every message
 * reads the same: `office is offline (configured; last connected 2 min ago;
 * retrying in 8 s: connection refused)`.
 */
export class NodeStates {
  constructor (private readonly sources: NodeStateSources) {}

  /** A peer by its node id; a peer without a card by a short peer id. */
  nameOf (peerId: string): string {
    const nodeId = this.sources.view.nodeIdOf(peerId)
    if (nodeId == null) return `an unannounced peer (${peerId})`
    const contested = this.sources.view.nodes().find(n => n.peerId === peerId)?.nameHeldBy != null
    return contested ? `${nodeId} (peer ${peerId}, which does not hold that name)` : nodeId
  }

  /** One phrase for the state of the node called `nodeId`, or undefined when nothing is known of it. */
  describe (nodeId: string, now = Date.now()): string | undefined {
    const { view, dialer, heartbeat } = this.sources
    const node = view.nodes().find(n => n.nodeId === nodeId && n.nameHeldBy == null)
    const configured = dialer?.get(nodeId)
    const facts: string[] = []
    if (configured != null) {
      facts.push('configured')
      facts.push(configured.lastConnectedAt == null ? 'never connected' : `last connected ${ago(configured.lastConnectedAt, now)}`)
      if (configured.state === 'dialing') facts.push(`connecting now${configured.lastError == null ? '' : ` (last try: ${configured.lastError})`}`)
      if (configured.state === 'waiting') {
        const wait = configured.nextAttemptAt == null ? '' : ` in ${Math.max(0, Math.round((configured.nextAttemptAt - now) / 1000))} s`
        facts.push(`retrying${wait}: ${configured.lastError ?? 'the connection closed'}`)
      }
    }
    // A configured peer is kept connected: without a connection it is not online, whatever its card says.
    const lost = configured != null && configured.state !== 'connected' && node?.connected !== true
    if (node != null && node.reach !== 'unreachable' && !lost) {
      const liveness = node.self ? undefined : heartbeat?.get(peerIdFromString(node.peerId))
      // An error names nodes by name only: a relay without one is `a relay`.
      const path = pathText(node.reach, { nodeId: node.via?.nodeId })
      return `${nodeId} is online (${path}${liveness?.rttMs == null ? '' : `, ${liveness.rttMs} ms`})`
    }
    if (node != null) {
      facts.unshift(`announced ${ago(Date.parse(node.lastSeen), now)}, but no connection to it is open`)
      return `${nodeId} is unreachable (${facts.join('; ')})`
    }
    const departure = view.departure(nodeId)
    if (departure != null) facts.push(`left ${ago(departure.at, now)}: ${departure.reason}`)
    return facts.length === 0 ? undefined : `${nodeId} is offline (${facts.join('; ')})`
  }
}

/** How long an error about a lost path waits to learn the state of its relay. */
const RELAY_CHECK_MS = 2_000

/**
 * Names peers in errors about a lost path, and says the state of the relay
 * the path went through. Asked right after the path broke, when the
 * connection to the relay may not have noticed yet that the relay is gone:
 * so the relay is pinged first and, if it does not answer, its connection
 * is given RELAY_CHECK_MS to close before its state is read.
 */
export function pathDescriber (states: NodeStates, sources: { swarm: Swarm, view: ClusterView, heartbeat: Pick<Heartbeat, 'check'> }): PeerDescriber {
  const { swarm, view, heartbeat } = sources
  return {
    name: peerId => view.nodeIdOf(peerId) ?? states.nameOf(peerId),
    state: async peerId => {
      const nodeId = view.nodeIdOf(peerId)
      if (nodeId == null) return undefined
      const peer = peerIdFromString(peerId)
      // Wakeful, as every wait for a peer: a blocked host must not read its own stall as the relay's silence.
      await withWakefulDeadline(RELAY_CHECK_MS, async signal => {
        const answered = await Promise.race([heartbeat.check(peer), whenAborted(signal).then(() => false)])
        if (!answered) await disconnected(swarm, peer, signal)
      })
      return states.describe(nodeId)
    }
  }
}

/** Resolves once `peer` has no open connection, or `signal` aborts. */
async function disconnected (swarm: Swarm, peer: PeerId, signal: AbortSignal): Promise<void> {
  const open = (): boolean => swarm.getConnections(peer).some(c => c.status === 'open')
  if (!open() || signal.aborted) return
  await new Promise<void>(resolve => {
    const done = (): void => {
      swarm.removeEventListener('peer:disconnect', onDisconnect)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const onDisconnect = (event: CustomEvent<PeerId>): void => { if (event.detail.equals(peer)) done() }
    swarm.addEventListener('peer:disconnect', onDisconnect)
    signal.addEventListener('abort', done, { once: true })
  })
}

function ago (at: number, now: number): string {
  const s = Math.max(0, Math.round((now - at) / 1000))
  if (s < 90) return `${s} s ago`
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`
  return `${Math.round(s / 3600)} h ago`
}
