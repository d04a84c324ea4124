import { pathText } from './routing.js'
import type { Card } from './card.js'
import type { ClusterView } from './cluster-view.js'
import type { Heartbeat } from '../../node/heartbeat.js'
import type { InfoLog } from '../../node/logging.js'
import type { Swarm } from '../../node/swarm.js'
import type { PeerId, Startable } from '@libp2p/interface'

export interface ClusterLogComponents {
  swarm: Pick<Swarm, 'peerId'>
  view: ClusterView
  heartbeat: Heartbeat
  log: InfoLog
}

/** The operator's lines about the cluster: a node joined or left, a node id is claimed twice, a peer stopped answering. */
export class ClusterLog implements Startable {
  constructor (private readonly components: ClusterLogComponents, private readonly init: { maxMissed: number }) {}

  start (): void {
    const { view, heartbeat } = this.components
    view.addEventListener('node:joined', this.onJoined)
    view.addEventListener('node:left', this.onLeft)
    view.addEventListener('conflict', this.onConflict)
    heartbeat.addEventListener('peer:unresponsive', this.onUnresponsive)
  }

  stop (): void {
    const { view, heartbeat } = this.components
    view.removeEventListener('node:joined', this.onJoined)
    view.removeEventListener('node:left', this.onLeft)
    view.removeEventListener('conflict', this.onConflict)
    heartbeat.removeEventListener('peer:unresponsive', this.onUnresponsive)
  }

  private readonly onJoined = (event: CustomEvent<Card>): void => {
    const card = event.detail
    const reach = this.components.view.reachOf(card.peerId)
    const how = pathText(reach.reach, reach.via)
    this.components.log.info(`node joined: ${card.nodeId} (${how}, peer id ${card.peerId})`)
  }

  private readonly onLeft = (event: CustomEvent<{ card: Card, reason: string }>): void => {
    this.components.log.info(`node left: ${event.detail.card.nodeId} (${event.detail.reason})`)
  }

  private readonly onConflict = (event: CustomEvent<{ nodeId: string, peerIds: string[], holder: string }>): void => {
    const { nodeId, peerIds, holder } = event.detail
    const self = this.components.swarm.peerId.toString()
    // A node always holds its own name in its own view; elsewhere the first peer seen with it does.
    const holds = holder === self ? 'this node' : `${holder} (seen first)`
    this.components.log.warn(`node id "${nodeId}" is claimed by ${peerIds.length} live peers (${peerIds.join(', ')}); it stays with ${holds}; ` +
      'the others are reached by peer id until renamed. Unmanaged cluster: any secret holder can claim any name')
  }

  private readonly onUnresponsive = (event: CustomEvent<PeerId>): void => {
    this.components.log.warn(`${this.components.view.nodeIdOf(event.detail.toString()) ?? 'a peer without a card'} (peer id ${event.detail}) missed ${this.init.maxMissed} heartbeats; disconnected`)
  }
}
