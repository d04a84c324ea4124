import { setTimeout as sleep } from 'node:timers/promises'
import { peerUrlToMultiaddr } from '../config/addresses.js'
import { explainDialFailure } from './dial-errors.js'
import type { Swarm } from './swarm.js'
import type { PeerConfig } from '../config/schema.js'
import type { Logger, PeerId, Startable } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface ReconnectInit {
  minDelayMs: number
  maxDelayMs: number
}

export interface ConfiguredPeerState {
  nodeId: string
  url: string
  state: 'connected' | 'dialing' | 'waiting'
  peerId?: string
  attempts: number
  /** Why the last dial failed or the connection ended, in words (./dial-errors.ts); set whenever not connected after a first try. */
  lastError?: string
  nextAttemptAt?: number
  /** When a connection to it was last open (epoch ms). */
  lastConnectedAt?: number
}

/** Exponential backoff with jitter: attempt 0 waits about minDelay, doubling to maxDelay. */
export function backoffDelay (attempt: number, { minDelayMs, maxDelayMs }: ReconnectInit, random = Math.random): number {
  const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(attempt, 30))
  // Full jitter above half the ceiling spreads a cluster's retries without ever retrying at once.
  return Math.round(ceiling / 2 + random() * ceiling / 2)
}

/**
 * Keeps the configured peers connected: dials each at start and, whenever
 * the connection is lost or a dial fails, again after an exponential backoff
 * (reset by every successful connection), for as long as the node runs.
 */
export class PeerDialer implements Startable {
  private readonly log: Logger
  private readonly states = new Map<string, ConfiguredPeerState>()
  private controller = new AbortController()

  constructor (private readonly swarm: Swarm, private readonly peers: PeerConfig[], private readonly init: ReconnectInit) {
    this.log = swarm.logger.forComponent('clawmatrix:dialer')
    for (const peer of peers) {
      this.states.set(peer.nodeId, { nodeId: peer.nodeId, url: peer.url, state: 'waiting', attempts: 0 })
    }
  }

  start (): void {
    this.controller = new AbortController()
    for (const peer of this.peers) {
      void this.keep(peer, peerUrlToMultiaddr(peer.url), this.controller.signal)
    }
  }

  stop (): void {
    this.controller.abort()
  }

  /** The configured peer with this node id, if any. */
  get (nodeId: string): ConfiguredPeerState | undefined {
    const state = this.states.get(nodeId)
    return state == null ? undefined : { ...state }
  }

  /** Whether `peer` is one of the configured peers (once connected, its peer id is known). */
  isConfigured (peer: PeerId): boolean {
    const id = peer.toString()
    for (const state of this.states.values()) if (state.peerId === id) return true
    return false
  }

  list (): ConfiguredPeerState[] {
    return [...this.states.values()].map(state => ({ ...state }))
  }

  private async keep (peer: PeerConfig, address: Multiaddr, signal: AbortSignal): Promise<void> {
    const state = this.states.get(peer.nodeId)!
    let failures = 0
    while (!signal.aborted) {
      let delay: number
      try {
        state.state = 'dialing'
        state.attempts++
        const connection = await this.swarm.dial(address, { signal })
        state.state = 'connected'
        state.peerId = connection.remotePeer.toString()
        state.lastError = undefined
        state.lastConnectedAt = Date.now()
        failures = 0
        this.log('connected to configured peer %s at %a', peer.nodeId, address)
        await this.disconnected(connection.remotePeer, signal)
        state.lastConnectedAt = Date.now()
        state.lastError = 'the connection closed'
        delay = backoffDelay(0, this.init)
      } catch (err: any) {
        if (signal.aborted) return
        state.lastError = await explainDialFailure(err, address)
        if (signal.aborted) return
        delay = backoffDelay(failures++, this.init)
        this.log('dial %s at %a failed (%s), retrying in %d ms', peer.nodeId, address, err.message, delay)
      }
      state.state = 'waiting'
      state.nextAttemptAt = Date.now() + delay
      await sleep(delay, undefined, { signal }).catch(() => {})
    }
  }

  /** Resolves once no connection to `peer` remains. */
  private async disconnected (peer: PeerId, signal: AbortSignal): Promise<void> {
    if (this.swarm.getConnections(peer).length === 0) return
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.swarm.removeEventListener('peer:disconnect', onDisconnect)
        signal.removeEventListener('abort', done)
        resolve()
      }
      const onDisconnect = (event: CustomEvent<PeerId>): void => {
        if (event.detail.equals(peer)) done()
      }
      this.swarm.addEventListener('peer:disconnect', onDisconnect)
      signal.addEventListener('abort', done)
    })
  }
}
