import { logger } from '@libp2p/logger'
import { Heartbeat } from '../node/heartbeat.js'
import { loadOrCreatePeerKey } from '../node/identity.js'
import { PeerDialer } from '../node/peer-dialer.js'
import { createSwarm, type Swarm } from '../node/swarm.js'
import { bindReason, LocalHttpServer, sendJson } from './http/local-server.js'
import { nodeStatus, type NodeStatus } from './status.js'
import type { Config } from '../config/schema.js'
import type { IdentifyResult, PeerId } from '@libp2p/interface'

/** Where info-level lines go: stderr for the CLI, OpenClaw's logger in the plugin. */
export interface InfoLog {
  info(message: string): void
  warn(message: string): void
}

export interface ClawmatrixNodeInit {
  config: Config
  /** Holds the peer key (and later the announcement sequence). */
  stateDir: string
  log?: InfoLog
}

const consoleLog: InfoLog = {
  info: message => { console.error(message) },
  warn: message => { console.error(`warning: ${message}`) }
}

/**
 * One clawmatrix member: the libp2p swarm, the configured-peer dialer, the
 * heartbeat and the local HTTP endpoint, started and stopped together.
 */
export class ClawmatrixNode {
  private readonly debug = logger('clawmatrix:node')
  private readonly joined = new Set<string>()
  private startedAt = 0

  private constructor (
    readonly config: Config,
    readonly swarm: Swarm,
    readonly heartbeat: Heartbeat,
    readonly dialer: PeerDialer,
    readonly http: LocalHttpServer,
    private readonly log: InfoLog
  ) {
    http.route('GET', '/clawmatrix/status', async (_req, res) => { sendJson(res, 200, await this.status()) })
  }

  static async create (init: ClawmatrixNodeInit): Promise<ClawmatrixNode> {
    const { config } = init
    const swarm = await createSwarm(config, await loadOrCreatePeerKey(init.stateDir))
    return new ClawmatrixNode(
      config,
      swarm,
      new Heartbeat(swarm, config.heartbeat),
      new PeerDialer(swarm, config.peers, config.reconnect),
      new LocalHttpServer({ host: config.proxyHost, port: config.proxyPort, portField: 'proxyPort' }),
      init.log ?? consoleLog
    )
  }

  get peerId (): PeerId {
    return this.swarm.peerId
  }

  async start (): Promise<void> {
    this.startedAt = Date.now()
    this.swarm.addEventListener('peer:identify', this.onIdentify)
    this.swarm.addEventListener('peer:disconnect', this.onDisconnect)
    this.heartbeat.addEventListener('peer:unresponsive', this.onUnresponsive)
    try {
      await this.swarm.start()
    } catch (err: any) {
      await Promise.resolve(this.swarm.stop()).catch(() => {})
      const { listenHost, listenPort } = this.config
      throw new Error(`cannot listen on ${listenHost}:${listenPort} (listenPort): ${bindReason(err)}`)
    }
    try {
      await this.http.start()
    } catch (err) {
      await this.swarm.stop()
      throw err
    }
    this.heartbeat.start()
    this.dialer.start()
    const addresses = this.swarm.getMultiaddrs().map(String)
    this.log.info(`clawmatrix node ${this.config.nodeId} started: peer id ${this.peerId}; ` +
      `listening on ${addresses.length > 0 ? addresses.join(', ') : 'nothing (dial-out only)'}; ` +
      `status at ${this.http.url}/clawmatrix/status`)
  }

  /** Closes every connection gracefully, so peers see a close rather than a timeout. */
  async stop (): Promise<void> {
    this.dialer.stop()
    this.heartbeat.stop()
    this.swarm.removeEventListener('peer:identify', this.onIdentify)
    this.swarm.removeEventListener('peer:disconnect', this.onDisconnect)
    this.heartbeat.removeEventListener('peer:unresponsive', this.onUnresponsive)
    await this.http.stop()
    await this.swarm.stop()
    this.debug('stopped')
  }

  async status (): Promise<NodeStatus> {
    return nodeStatus(this, this.startedAt)
  }

  private readonly onIdentify = (event: CustomEvent<IdentifyResult>): void => {
    const { peerId, agentVersion } = event.detail
    const key = peerId.toString()
    if (this.joined.has(key)) return
    this.joined.add(key)
    const address = this.swarm.getConnections(peerId)[0]?.remoteAddr.toString() ?? 'unknown address'
    this.log.info(`peer joined: ${agentVersion ?? 'unknown agent'} ${key} via ${address}`)
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    const key = event.detail.toString()
    if (this.joined.delete(key)) this.log.info(`peer left: ${key}`)
  }

  private readonly onUnresponsive = (event: CustomEvent<PeerId>): void => {
    this.log.warn(`peer ${event.detail} missed ${this.config.heartbeat.maxMissed} heartbeats; disconnected`)
  }
}
