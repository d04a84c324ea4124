import { readFile } from 'node:fs/promises'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import { VERSION } from '../version.js'
import { admissionGater, admitting, type Admission } from './admission.js'
import { peerUrlToMultiaddr } from '../config/addresses.js'
import * as c from './constants.js'
import { installEd25519KeyCache } from './ed25519-key-cache.js'
import { gatedEncrypters } from './gate.js'
import { fastGossipMessageId } from './gossip-message-id.js'
import { concurrentOutboundStreams } from './gossip-streams.js'
import { InboundAdmission } from './inbound-admission.js'
import { webSocketTransport } from './websocket-transport.js'
import { yamuxMuxer } from './yamux-muxer.js'
import { nodeLogger } from './logging.js'
import { clusterSecrets, DEFAULT_PENDING_HANDSHAKES_PER_IP, DEFAULT_UPGRADES_PER_IP_PER_MINUTE } from '../config/schema.js'
import type { Config } from '../config/schema.js'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { Libp2p, Libp2pEvents, PrivateKey, TypedEventTarget } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'

export interface SwarmServices {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  [name: string]: unknown
}

export type Swarm = Libp2p<SwarmServices>

export type SwarmConfig = Pick<Config, 'nodeId' | 'secret' | 'secrets' | 'listen' | 'listenHost' | 'listenPort' | 'tls' | 'announceAddresses'> & Partial<Pick<Config, 'limits'>> & { mesh?: Pick<Config['mesh'], 'mode' | 'relays'> }

export interface SwarmOptions {
  /** libp2p's `metrics` option, e.g. Prometheus metrics in the node's own registry. */
  metrics?: Libp2pOptions['metrics']
  /** Take circuit relay reservations (default true); a throwaway inspector does not. */
  relayReservations?: boolean
  /** A managed cluster's admission (certificates); without it any holder of the secret is a member. */
  admission?: Admission
  /**
   * Release the sockets of closed WebSocket connections (./websocket-transport.ts). Only the
   * relay soak bench turns it off, to measure the leak it fixes.
   *
   * @default true
   */
  releaseSockets?: boolean
  /** Told when a per-IP limit (config.limits) drops an inbound connection; at most once a minute per address. */
  onInboundRefused?: (message: string) => void
}

/** Per-IP limits on inbound WebSocket connections before Noise (./inbound-admission.ts), for a listening node. */
function inboundAdmission (config: SwarmConfig, options: SwarmOptions): InboundAdmission | undefined {
  if (!config.listen) return undefined
  return new InboundAdmission({
    upgradesPerIpPerMinute: config.limits?.upgradesPerIpPerMinute ?? DEFAULT_UPGRADES_PER_IP_PER_MINUTE,
    pendingHandshakesPerIp: config.limits?.pendingHandshakesPerIp ?? DEFAULT_PENDING_HANDSHAKES_PER_IP,
    onRefused: refusal => { options.onInboundRefused?.(refusal.message) }
  })
}

/** The user agent other peers see in identify: names the software and this node. */
export function userAgent (nodeId: string): string {
  return `clawmatrix/${VERSION} (node=${nodeId})`
}

/**
 * Creates (without starting) the libp2p node every clawmatrix process runs:
 * WebSocket + circuit relay transports, Noise bound to the cluster secrets,
 * Yamux, identify, ping and gossipsub. A listening node also serves as a
 * circuit relay for the other members.
 */
export async function createSwarm (config: SwarmConfig, privateKey: PrivateKey, swarmOptions: SwarmOptions = {}): Promise<Swarm> {
  // One Ed25519 key object per publisher instead of one per verified signature (./ed25519-key-cache.ts).
  installEd25519KeyCache()
  const https = config.tls == null
    ? undefined
    : { cert: await readFile(config.tls.certFile), key: await readFile(config.tls.keyFile) }
  const wsProtocol = https == null ? 'ws' : 'tls/ws'
  const host = config.listenHost.includes(':') ? `/ip6/${config.listenHost}` : `/ip4/${config.listenHost}`
  const mode = config.mesh?.mode ?? 'on-demand'
  // One `/p2p-circuit` listen address per reservation: the relay transport holds as many as it lists.
  const reservations = swarmOptions.relayReservations === false ? 0 : config.listen ? 1 : Math.max(1, config.mesh?.relays ?? 1)
  const circuit = Array.from({ length: reservations }, () => '/p2p-circuit')
  const { admission } = swarmOptions
  // One Noise per accepted secret (./gate.ts), each wrapped in the managed gate when there is one.
  const encrypters = gatedEncrypters(clusterSecrets(config), admission == null ? undefined : encrypter => admitting(encrypter, admission))

  const options: Libp2pOptions<SwarmServices> = {
    privateKey,
    // Every libp2p and clawmatrix debug line of this node says which node it is.
    logger: nodeLogger(config.nodeId),
    nodeInfo: { name: 'clawmatrix', version: VERSION, userAgent: userAgent(config.nodeId) },
    addresses: {
      // A node without a listener still takes relay reservations, so others can reach it.
      listen: config.listen ? [`${host}/tcp/${config.listenPort}/${wsProtocol}`, ...circuit] : circuit,
      announce: config.announceAddresses.map(url => peerUrlToMultiaddr(url).toString())
    },
    // The WebSocket transport, with aborted connections' sockets released (./websocket-transport.ts).
    transports: [webSocketTransport({ https, releaseSockets: swarmOptions.releaseSockets, admission: inboundAdmission(config, swarmOptions) }), circuitRelayTransport()],
    connectionEncrypters: encrypters,
    connectionGater: admission == null ? undefined : admissionGater(admission),
    // Yamux with window updates in halves rather than one per data frame (./yamux-muxer.ts).
    streamMuxers: [yamuxMuxer({ maxEarlyStreams: c.MAX_EARLY_STREAMS, streamOptions: { maxStreamWindowSize: c.MAX_STREAM_WINDOW_BYTES } })],
    connectionManager: {
      inboundUpgradeTimeout: c.INBOUND_UPGRADE_TIMEOUT_MS,
      maxIncomingPendingConnections: c.MAX_INCOMING_PENDING_CONNECTIONS,
      inboundConnectionThreshold: c.INBOUND_CONNECTION_THRESHOLD,
      dialTimeout: c.DIAL_TIMEOUT_MS
    },
    // Liveness is the heartbeat's job (./heartbeat.ts), with clawmatrix's own intervals.
    connectionMonitor: { enabled: false },
    services: {
      identify: identify({ runOnLimitedConnection: true }),
      ping: ping({ runOnLimitedConnection: true }),
      noDiscoveryDials,
      // Streams to new peers opened side by side, not one peer at a time (./gossip-streams.ts).
      pubsub: concurrentOutboundStreams(gossipsub({
        allowPublishToZeroTopicPeers: true,
        runOnLimitedConnection: true,
        emitSelf: false,
        // Copies of a message already verified are dropped before their signature is checked again (./gossip-message-id.ts).
        fastMsgIdFn: fastGossipMessageId,
        // Every peer passed the gate, and many share an IP (an office NAT, or a relay: a relayed
        // connection's remote address is the relay's). gossipsub's IP-colocation penalty would score
        // members below its graylist past ~14 peers per IP and stop delivering cards.
        // gossipsub keeps the score of a departed peer unless it was positive, for retainScore (an hour
        // by default). No topic is scored here, so none is positive: that was a record per peer met.
        scoreParams: { IPColocationFactorWeight: 0, retainScore: c.GOSSIP_SCORE_RETAIN_MS },
        // No IDONTWANT for cards (./constants.ts): per card, a relay sent one to every member but the sender.
        idontwantMinDataSize: c.GOSSIP_IDONTWANT_MIN_BYTES,
        // On demand, members connect to a few relays only, and a relay forwards a card to its mesh peers
        // alone: with the default Dhi (12) the members past the twelfth got cards by lazy gossip, late or
        // never (docs/cluster.md). A mesh without an upper bound reaches them all in one hop. A full mesh
        // keeps the default, or every card would go to every member from every member.
        ...(mode === 'on-demand' ? { Dhi: c.UNBOUNDED_GOSSIP_MESH } : {})
      })),
      ...(config.listen
        ? {
            relay: circuitRelayServer({
              reservations: { applyDefaultLimit: false, maxReservations: c.MAX_RELAY_RESERVATIONS },
              // Each relayed connection holds a HOP stream for its life; the default of 32 per connection
              // would refuse a member's 33rd relayed peer behind this relay.
              maxInboundHopStreams: c.MAX_RELAYED_CONNECTIONS_PER_PEER,
              maxOutboundHopStreams: c.MAX_RELAYED_CONNECTIONS_PER_PEER
            })
          }
        : {})
    },
    metrics: swarmOptions.metrics,
    start: false
  }
  return createLibp2p(options)
}

/**
 * Members are learnt from their cards (services/cluster) and connected to on
 * demand. libp2p announces each peer new to the peer store as discovered,
 * and while the circuit transport has a reservation slot to fill it dials
 * every discovered peer to probe it for a relay service: with fewer relays
 * than slots that is every member, a full mesh again. This service stops
 * those announcements on the components' event bus, before the transport's
 * listener (registered later, when it starts looking); relays are still
 * found among the peers this node connects to.
 */
function noDiscoveryDials (components: { events: TypedEventTarget<Libp2pEvents> }): object {
  components.events.addEventListener('peer:discovery', event => { event.stopImmediatePropagation() })
  return {}
}
