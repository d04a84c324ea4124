import type { AbortOptions, ComponentLogger, Connection, DialOptions, DialProtocolOptions, Libp2p, PeerId, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'

/**
 * What a clawmatrix protocol needs from libp2p: the registrar and
 * connection-manager methods js-libp2p hands its services, narrowed to the
 * three used here, and the node's logger.
 */
export interface ProtocolComponents {
  logger: ComponentLogger
  registrar: {
    handle(protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void>
    unhandle(protocol: string, options?: AbortOptions): Promise<void>
  }
  connectionManager: {
    openStream(peer: PeerId, protocol: string, options?: DialProtocolOptions): Promise<Stream>
    /** An open connection to `peer` (dialing one if none is open): a request keeps it to tell which path it took. */
    openConnection(peer: PeerId, options?: DialOptions): Promise<Connection>
  }
}

/** The components of an existing libp2p node, for protocols created outside its `services`. */
export function libp2pComponents (node: Pick<Libp2p, 'handle' | 'unhandle' | 'dial' | 'dialProtocol' | 'logger'>): ProtocolComponents {
  return {
    logger: node.logger,
    registrar: {
      handle: async (protocol, handler, options) => { await node.handle(protocol, handler, options) },
      unhandle: async (protocol, options) => { await node.unhandle(protocol, options) }
    },
    connectionManager: {
      openStream: async (peer, protocol, options) => node.dialProtocol(peer, protocol, options),
      openConnection: async (peer, options) => node.dial(peer, options)
    }
  }
}
