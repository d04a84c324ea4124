import { PathLostError } from './errors.js'
import type { ProtocolComponents } from './components.js'
import type { Connection, DialProtocolOptions, PeerId, Stream } from '@libp2p/interface'

/** How errors about a lost path name peers and say a relay's state. */
export interface PeerDescriber {
  /** A peer's name (its node id when known). */
  name(peerId: string): string
  /** The relay's state in words (`r1 is offline (configured; ...)`), checked now: asked right after a path through it broke. */
  state(peerId: string): Promise<string | undefined>
}

/** A request's stream and the connection it travels on, so a failure can tell a lost path from a lost peer. */
export interface RoutedStream {
  stream: Stream
  connection: Connection
}

export async function openRoutedStream (components: ProtocolComponents, peer: PeerId, protocol: string, options: DialProtocolOptions): Promise<RoutedStream> {
  const connection = await components.connectionManager.openConnection(peer, options)
  return { stream: await connection.newStream(protocol, options), connection }
}

/** The relay's peer id in a circuit address (`.../p2p/<relay>/p2p-circuit/...`). */
export function relayOf (connection: Connection): string | undefined {
  return connection.remoteAddr.toString().match(/\/p2p\/(\w+)\/p2p-circuit/)?.[1]
}

/**
 * A PathLostError when a request failed because the relayed connection it
 * used is gone (its relay died or dropped it); undefined for anything else,
 * a direct connection included: then the peer itself is what failed.
 */
export async function lostPath (connection: Connection, peer: PeerId, accepted: boolean, cause: unknown, describe?: PeerDescriber): Promise<PathLostError | undefined> {
  const relay = relayOf(connection)
  if (relay == null || connection.status === 'open') return undefined
  const name = (id: string): string => describe?.name(id) ?? id
  return new PathLostError(name(peer.toString()), relay, { name: name(relay), state: await describe?.state(relay) }, accepted, { cause })
}
