import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { ping } from '@libp2p/ping'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'
import { importDist } from './dist.js'
import type { Identify } from '@libp2p/identify'
import type { Libp2p } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'

// The limit values only: no clawmatrix behaviour goes into the baseline.
const limits = await importDist<typeof import('../../src/node/constants.js')>('node/constants.js')

export type PlainNode = Libp2p<{ identify: Identify, ping: Ping }>

/**
 * The baseline: a plain libp2p node with the transports clawmatrix uses
 * (WebSockets, Noise, Yamux, identify, ping) and nothing else: no gate, no
 * gossipsub, no relay. Only the connection-manager limits are clawmatrix's,
 * because libp2p's default of 5 inbound dials per second per IP would refuse
 * a dial loop and measure the throttle instead of the dial.
 */
export async function createPlainNode (listenHost?: string, listenPort = 0): Promise<PlainNode> {
  return createLibp2p({
    addresses: { listen: listenHost == null ? [] : [`/ip4/${listenHost}/tcp/${listenPort}/ws`] },
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      inboundUpgradeTimeout: limits.INBOUND_UPGRADE_TIMEOUT_MS,
      maxIncomingPendingConnections: limits.MAX_INCOMING_PENDING_CONNECTIONS,
      inboundConnectionThreshold: limits.INBOUND_CONNECTION_THRESHOLD,
      dialTimeout: limits.DIAL_TIMEOUT_MS
    },
    services: { identify: identify(), ping: ping() }
  })
}
