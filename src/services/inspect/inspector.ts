import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerUrlToMultiaddr } from '../../config/addresses.js'
import { createSwarm } from '../../node/swarm.js'
import { isRelayed } from '../cluster/cluster-view.js'
import { libp2pComponents } from '../wire/components.js'
import { VIEW_TIMEOUT_MS } from './constants.js'
import { transportOf } from './peers.js'
import { ViewProtocol, type ClusterViewSnapshot } from './view-protocol.js'
import type { IdentifyResult } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { InspectError } from '../errors.js'

/** What `clawmatrix inspect` learns about a member, as `vole libp2p identify` does for open swarms. */
export interface InspectReport {
  /** The address dialed. */
  address: string
  peerId: string
  agentVersion?: string
  protocolVersion?: string
  protocols: string[]
  listenAddresses: string[]
  /** This inspector's address as the member saw it. */
  observedAddress?: string
  connection: { transport: string, relayed: boolean, encryption?: string, multiplexer?: string }
  pingMs: number
  /** The member's cluster view, unless it could not be fetched (then `viewError` says why). */
  view?: ClusterViewSnapshot
  viewError?: string
}

export interface InspectOptions {
  /** Budget for the whole inspection: dial, identify, ping and view. */
  timeoutMs?: number
  signal?: AbortSignal
}

/** The name a throwaway inspector gives itself in identify, so operators can tell it from members. */
export const INSPECTOR_NODE_ID = 'clawmatrix-inspect'

/**
 * Dials a member with a throwaway swarm (fresh key, no listener, no relay
 * reservation, no announcements: it never joins the cluster view), runs
 * identify and ping, and fetches the member's cluster view.
 */
export async function inspectMember (target: string, secret: string, options: InspectOptions = {}): Promise<InspectReport> {
  let address: Multiaddr
  try {
    address = peerUrlToMultiaddr(target)
  } catch (err: any) {
    throw new InspectError(`cannot inspect "${target}": ${err.message}`)
  }
  const timeoutMs = options.timeoutMs ?? VIEW_TIMEOUT_MS
  const signal = options.signal == null ? AbortSignal.timeout(timeoutMs) : AbortSignal.any([options.signal, AbortSignal.timeout(timeoutMs)])
  const swarm = await createSwarm({
    nodeId: INSPECTOR_NODE_ID,
    secret,
    listen: false,
    listenHost: '127.0.0.1',
    listenPort: 0,
    announceAddresses: []
  }, await generateKeyPair('Ed25519'), { relayReservations: false })
  // libp2p runs identify on every new connection, and a member serves one identify
  // stream per connection at a time: take that result rather than asking again.
  const identifiedBy = new Map<string, PromiseWithResolvers<IdentifyResult>>()
  const identifiedOn = (connectionId: string): PromiseWithResolvers<IdentifyResult> => {
    if (!identifiedBy.has(connectionId)) identifiedBy.set(connectionId, Promise.withResolvers())
    return identifiedBy.get(connectionId)!
  }
  swarm.addEventListener('peer:identify', event => { identifiedOn(event.detail.connection.id).resolve(event.detail) })
  await swarm.start()
  try {
    const connection = await swarm.dial(address, { signal }).catch((err: unknown) => {
      throw new InspectError(`cannot inspect ${address}: ${dialFailure(err, signal, timeoutMs)}`, { cause: err })
    })
    const identified = await raceSignal(identifiedOn(connection.id).promise, signal)
    const pingMs = await swarm.services.ping.ping(connection.remotePeer, { signal })
    const report: InspectReport = {
      address: connection.remoteAddr.toString(),
      peerId: connection.remotePeer.toString(),
      agentVersion: identified.agentVersion,
      protocolVersion: identified.protocolVersion,
      protocols: [...identified.protocols].sort(),
      listenAddresses: identified.listenAddrs.map(String),
      observedAddress: identified.observedAddr?.toString(),
      connection: {
        transport: transportOf(connection),
        relayed: isRelayed(connection.remoteAddr.toString()),
        encryption: connection.encryption,
        multiplexer: connection.multiplexer
      },
      pingMs
    }
    try {
      report.view = await new ViewProtocol(libp2pComponents(swarm), { timeoutMs }).fetch(connection.remotePeer, { signal })
    } catch (err: any) {
      report.viewError = err.message
    }
    return report
  } catch (err: any) {
    if (err instanceof InspectError) throw err
    throw new InspectError(`cannot inspect ${address}: ${signal.aborted ? `no answer within ${timeoutMs / 1000} s` : err.message}`, { cause: err })
  } finally {
    await Promise.resolve(swarm.stop()).catch((err: Error) => { swarm.logger.forComponent('clawmatrix:inspect')('stopping the inspector failed: %s', err.message) })
  }
}

/** Resolves with `promise`, or rejects when `signal` aborts first. */
async function raceSignal<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted()
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}

function dialFailure (err: any, signal: AbortSignal, timeoutMs: number): string {
  // The gate: a wrong prologue fails the first encrypted handshake message (docs/gate.md).
  if (err?.name === 'EncryptionFailedError') {
    return 'refused: the node did not accept this secret (the gated Noise handshake failed); check CLAWMATRIX_SECRET'
  }
  if (signal.aborted || err?.name === 'TimeoutError') return `no answer within ${timeoutMs / 1000} s`
  // The WebSocket transport fails with a bare error event that says nothing more.
  if (!(err instanceof Error) || err.message === '') {
    return 'unreachable: no WebSocket connection (nothing listens there, or the host is unknown or unreachable)'
  }
  return `unreachable: ${err.message}`
}
