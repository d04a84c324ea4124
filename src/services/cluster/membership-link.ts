import type { Announcer } from './announcer.js'
import type { ClusterView } from './cluster-view.js'
import type { Membership } from '../../membership/index.js'
import type { InfoLog } from '../../node/logging.js'
import type { Startable } from '@libp2p/interface'

export interface MembershipLinkComponents {
  membership: Pick<Membership, 'addEventListener' | 'removeEventListener'>
  view: Pick<ClusterView, 'drop'>
  announcer: Pick<Announcer, 'publish'>
  log: InfoLog
}

/**
 * What a managed cluster's membership changes mean for the cluster: a refused
 * peer leaves the view at once, and a renewed certificate goes out in a new card.
 */
export class MembershipLink implements Startable {
  constructor (private readonly components: MembershipLinkComponents) {}

  start (): void {
    this.components.membership.addEventListener('peer:refused', this.onRefused)
    this.components.membership.addEventListener('certificate:renewed', this.onRenewed)
  }

  stop (): void {
    this.components.membership.removeEventListener('peer:refused', this.onRefused)
    this.components.membership.removeEventListener('certificate:renewed', this.onRenewed)
  }

  private readonly onRefused = (event: CustomEvent<{ peerId: string, nodeId?: string, reason: string }>): void => {
    const { peerId, nodeId, reason } = event.detail
    this.components.view.drop(peerId, reason)
    this.components.log.warn(`${nodeId ?? 'peer'} (peer id ${peerId}) is no longer a member: ${reason}; disconnected`)
  }

  private readonly onRenewed = (): void => {
    void this.components.announcer.publish()
  }
}
