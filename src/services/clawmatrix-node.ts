import { logger } from '@libp2p/logger'
import { Heartbeat } from '../node/heartbeat.js'
import { escapingLog } from '../node/escape.js'
import { AuditLog, readAudit } from './audit/audit-log.js'
import type { WorkAudit } from './audit/served-work.js'
import { loadOrCreatePeerKey } from '../node/identity.js'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Membership, MembershipSetupError } from '../membership/index.js'
import { registerMembershipRoutes } from './http/membership-routes.js'
import { CallerPolicy } from './caller-policy.js'
import { PeerDialer } from '../node/peer-dialer.js'
import { createSwarm, type Swarm, type SwarmOptions } from '../node/swarm.js'
import { Announcer } from './cluster/announcer.js'
import { ClusterView } from './cluster/cluster-view.js'
import { IdleCloser } from './cluster/idle-closer.js'
import { MeshConnector } from './cluster/mesh-connector.js'
import { AnnounceSequence } from './cluster/sequence.js'
import { bindReason, LocalHttpServer, sendJson } from './http/local-server.js'
import { ModelProxyService, type ModelProxyOptions } from './model-proxy/index.js'
import { ClawmatrixMetrics } from './inspect/metrics.js'
import { NodeInspection } from './inspect/node-inspection.js'
import { MANAGED, nodeStatus, UNMANAGED, type MembershipStatus, type NodeStatus } from './status.js'
import { WorkProtocols, type WorkInit } from './work.js'
import { ShutdownState } from './shutdown.js'
import { ClusterClient } from './cluster-client.js'
import { registerWorkRoutes } from './http/work-routes.js'
import type { Config } from '../config/schema.js'
import type { Card } from './cluster/card.js'
import type { PeerId, Startable } from '@libp2p/interface'

/** Where info-level lines go: stderr for the CLI, OpenClaw's logger in the plugin. */
export interface InfoLog {
  info(message: string): void
  warn(message: string): void
}

export interface ClawmatrixNodeInit {
  config: Config
  /** Swarm options beyond the config: only benches set them. */
  swarm?: Pick<SwarmOptions, 'releaseSockets'>
  /** Holds the peer key (and later the announcement sequence). */
  stateDir: string
  log?: InfoLog
  /** Model proxy seams: upstream targets from the embedder's own provider config, a request observer. */
  modelProxy?: ModelProxyOptions
  /** How hand-offs, messages and tools run here; standalone defaults otherwise. */
  work?: WorkInit
}

/** This node holds a reservation on `peer`: its listen addresses include a circuit through it. */
function isReservedRelay (swarm: Swarm, peer: PeerId): boolean {
  const through = `/p2p/${peer.toString()}/p2p-circuit`
  return swarm.getMultiaddrs().some(a => a.toString().includes(through))
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
  private startedAt = 0
  /** Layers built on the node (tasks ...): started after it, stopped before it. */
  private readonly layers: Startable[] = []
  readonly view: ClusterView
  readonly announcer: Announcer
  readonly connector: MeshConnector
  /** Closes connections opened for work once idle (on-demand mode only). */
  readonly idleCloser?: IdleCloser
  /** The caller API: hand-offs, messages and tool calls to other nodes. */
  readonly client: ClusterClient
  /** The models this node hosts, the model stream protocol and the OpenAI-compatible routes. */
  readonly modelProxy: ModelProxyService
  /** The view protocol, /metrics, /clawmatrix/peers and the mesh page. */
  readonly inspection: NodeInspection

  private constructor (
    readonly config: Config,
    readonly swarm: Swarm,
    readonly heartbeat: Heartbeat,
    readonly dialer: PeerDialer,
    readonly http: LocalHttpServer,
    /** Hand-off, one-way message and tool proxy protocols. */
    readonly work: WorkProtocols,
    readonly metrics: ClawmatrixMetrics,
    /** Set once the host starts to stop: new work is refused with `<nodeId> is shutting down`. */
    readonly shutdown: ShutdownState,
    sequence: AnnounceSequence,
    private readonly log: InfoLog,
    modelOptions: ModelProxyOptions = {},
    /** A managed cluster's certificates and revocations; undefined in an unmanaged cluster. */
    readonly membership?: Membership
  ) {
    const intervalMs = config.heartbeat.intervalMs
    this.view = new ClusterView(swarm, heartbeat, () => this.announcer.card, Math.max(100, intervalMs / 2), membership)
    const certificate = membership == null ? undefined : () => membership.certificate
    const { mode, relays, idleCloseMs } = config.mesh
    this.announcer = new Announcer(swarm, this.view, heartbeat, sequence, { config, intervalMs, mode, metrics, certificate }, log)
    if (membership != null) registerMembershipRoutes(http, membership)
    this.connector = new MeshConnector(swarm, this.view, { mode, relays, listens: config.listen, maxRetryMs: intervalMs })
    if (mode === 'on-demand') {
      this.idleCloser = new IdleCloser(swarm, {
        idleMs: idleCloseMs,
        keep: peer => this.connector.isRelay(peer) || dialer.isConfigured(peer) || isReservedRelay(swarm, peer),
        lastWork: peer => this.view.workWith(peer.toString())
      })
    }
    this.client = new ClusterClient(this)
    registerWorkRoutes(http, this.client)
    this.modelProxy = new ModelProxyService({ ...modelOptions, config, swarm, view: this.view, http, log, metrics, refuse: shutdown.refusal })
    this.inspection = new NodeInspection(this)
    http.route('GET', '/clawmatrix/status', async (_req, res) => { sendJson(res, 200, await this.status()) })
    http.route('GET', '/clawmatrix/audit', async (req, res) => {
      const after = Number(new URL(req.url ?? '/', 'http://local').searchParams.get('after') ?? 0)
      sendJson(res, 200, work.audit == null ? { entries: [], next: 0 } : await readAudit(work.audit.log.path, Number.isSafeInteger(after) && after > 0 ? after : 0))
    })
  }

  static async create (init: ClawmatrixNodeInit): Promise<ClawmatrixNode> {
    let { config } = init
    const metrics = new ClawmatrixMetrics()
    // A managed node must have joined before it has a key: `join` installs the key its certificate names.
    const membership = config.authority == null
      ? undefined
      : await Membership.load(init.stateDir, config.authority, config.heartbeat.intervalMs)
    const peerKey = await loadOrCreatePeerKey(init.stateDir)
    if (membership != null) {
      const peerId = peerIdFromPrivateKey(peerKey).toString()
      const { certificate } = membership
      if (certificate.peerId !== peerId) {
        throw new MembershipSetupError(`the certificate in ${init.stateDir} is for peer id ${certificate.peerId}, not this node's ${peerId}; join again with an invite for this node`)
      }
      if (certificate.nodeId !== config.nodeId) {
        throw new MembershipSetupError(`nodeId: the config says "${config.nodeId}" but this node's certificate names it "${certificate.nodeId}"`)
      }
      // Tags are certified too: the card carries the certificate's, whatever the config says.
      config = { ...config, tags: certificate.tags }
    }
    const swarm = await createSwarm(config, peerKey, { ...init.swarm, metrics: metrics.libp2pMetrics(), admission: membership, onInboundRefused: message => { (init.log ?? consoleLog).warn(message) } })
    const policy = membership == null ? undefined : new CallerPolicy(config, membership)
    membership?.attach(swarm)
    const shutdown = new ShutdownState(config.nodeId)
    // The work protocols name their callers through the node, which is built below: ClawmatrixNode.callerName.
    let node: ClawmatrixNode | undefined
    const nodeIdOf = (peerId: string): string | undefined => node?.callerName(peerId)
    const audit: WorkAudit = {
      log: new AuditLog({ stateDir: init.stateDir, onEntry: entry => { metrics.audited(entry.kind, entry.outcome) } }),
      callerName: nodeIdOf
    }
    node = new ClawmatrixNode(
      config,
      swarm,
      new Heartbeat(swarm, config.heartbeat),
      new PeerDialer(swarm, config.peers, config.reconnect),
      new LocalHttpServer({ host: config.proxyHost, port: config.proxyPort, portField: 'proxyPort', token: config.proxyToken }),
      new WorkProtocols(swarm, config, init.stateDir, { ...init.work, admit: policy?.admit, audit }, { shutdown, nodeIdOf }),
      metrics,
      shutdown,
      await AnnounceSequence.load(init.stateDir),
      // Lines carry what members wrote (names, reasons): escaped here, once, for every sink.
      escapingLog(init.log ?? consoleLog),
      { ...init.modelProxy, admit: policy?.admit },
      membership
    )
    return node
  }

  /**
   * Adds a layer that uses this node (the task layer): started at the end of
   * start(), in the order added, and stopped first in stop().
   */
  extend (layer: Startable): void {
    this.layers.push(layer)
  }

  /**
   * The name of the node a request came from, as audit lines and per-caller
   * decisions record it: the certified name in a managed cluster, the name
   * its card claims otherwise. The one place a caller's name is resolved.
   */
  callerName (peerId: string): string | undefined {
    return this.membership != null ? this.membership.nameOf(peerId) : this.view.nodeIdOf(peerId)
  }

  /** Who may be a member and under which name, for status and the start line. */
  get membershipStatus (): MembershipStatus {
    return this.membership == null ? UNMANAGED : MANAGED
  }

  get peerId (): PeerId {
    return this.swarm.peerId
  }

  async start (): Promise<void> {
    this.startedAt = Date.now()
    this.view.addEventListener('node:joined', this.onJoined)
    this.view.addEventListener('node:left', this.onLeft)
    this.view.addEventListener('conflict', this.onConflict)
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
    await this.work.start()
    await this.modelProxy.start()
    await this.inspection.start()
    this.membership?.start()
    this.membership?.addEventListener('peer:refused', this.onRefused)
    this.membership?.addEventListener('certificate:renewed', this.onRenewed)
    this.heartbeat.start()
    this.view.start()
    this.connector.start()
    this.idleCloser?.start()
    await this.announcer.start()
    this.dialer.start()
    for (const layer of this.layers) await layer.start()
    const addresses = this.swarm.getMultiaddrs().map(String)
    this.log.info(`clawmatrix node ${this.config.nodeId} started: peer id ${this.peerId}; ` +
      `listening on ${addresses.length > 0 ? addresses.join(', ') : 'nothing (dial-out only)'}; ` +
      `status at ${this.http.url}/clawmatrix/status; ` +
      `membership ${this.membershipStatus.mode}: ${this.membershipStatus.note}`)
  }

  /**
   * The first step of stopping, taken as soon as the host starts to stop
   * (a gateway's drain can last minutes): announces that this node is
   * leaving, refuses new work from other nodes with `<nodeId> is shutting
   * down`, stops dialing, and cancels the hand-offs and tool calls running
   * here for others. stop() still does the rest.
   */
  async beginShutdown (): Promise<void> {
    if (!this.shutdown.begin()) return
    const reason = this.shutdown.refusal()!
    this.log.info(`clawmatrix node ${this.config.nodeId} is shutting down: announced leaving; refusing new work`)
    this.dialer.stop()
    this.connector.stop()
    this.work.cancelRunning(reason)
    await this.announcer.leave().catch(err => { this.debug('announcing the leave failed: %e', err) })
  }

  /** Closes every connection gracefully, so peers see a close rather than a timeout. */
  async stop (): Promise<void> {
    for (const layer of [...this.layers].reverse()) await layer.stop()
    this.dialer.stop()
    this.connector.stop()
    this.idleCloser?.stop()
    await this.work.stop()
    // Announced while the connections are still up, so peers drop this node at once.
    await this.announcer.stop()
    this.view.stop()
    this.heartbeat.stop()
    this.membership?.removeEventListener('peer:refused', this.onRefused)
    this.membership?.removeEventListener('certificate:renewed', this.onRenewed)
    this.membership?.stop()
    this.view.removeEventListener('node:joined', this.onJoined)
    this.view.removeEventListener('node:left', this.onLeft)
    this.view.removeEventListener('conflict', this.onConflict)
    this.heartbeat.removeEventListener('peer:unresponsive', this.onUnresponsive)
    await this.inspection.stop()
    await this.modelProxy.stop()
    await this.http.stop()
    await this.swarm.stop()
    this.debug('stopped')
  }

  async status (): Promise<NodeStatus> {
    return nodeStatus(this, this.startedAt)
  }

  private readonly onJoined = (event: CustomEvent<Card>): void => {
    const card = event.detail
    const reach = this.view.reachOf(card.peerId)
    const how = reach.reach === 'relayed' ? `relayed via ${reach.via?.nodeId ?? reach.via?.peerId ?? 'a relay'}` : reach.reach
    this.log.info(`node joined: ${card.nodeId} (${how}, peer id ${card.peerId})`)
  }

  private readonly onLeft = (event: CustomEvent<{ card: Card, reason: string }>): void => {
    this.log.info(`node left: ${event.detail.card.nodeId} (${event.detail.reason})`)
  }

  private readonly onConflict = (event: CustomEvent<{ nodeId: string, peerIds: string[], holder: string }>): void => {
    const { nodeId, peerIds, holder } = event.detail
    const self = this.peerId.toString()
    // A node always holds its own name in its own view; elsewhere the first peer seen with it does.
    const holds = holder === self ? 'this node' : `${holder} (seen first)`
    this.log.warn(`node id "${nodeId}" is claimed by ${peerIds.length} live peers (${peerIds.join(', ')}); it stays with ${holds}; ` +
      'the others are reached by peer id until renamed. Unmanaged cluster: any secret holder can claim any name')
  }

  private readonly onRefused = (event: CustomEvent<{ peerId: string, nodeId?: string, reason: string }>): void => {
    const { peerId, nodeId, reason } = event.detail
    this.view.drop(peerId, reason)
    this.log.warn(`${nodeId ?? 'peer'} (peer id ${peerId}) is no longer a member: ${reason}; disconnected`)
  }

  private readonly onRenewed = (): void => {
    void this.announcer.publish()
  }

  private readonly onUnresponsive = (event: CustomEvent<PeerId>): void => {
    this.log.warn(`${this.view.nodeIdOf(event.detail.toString()) ?? 'a peer without a card'} (peer id ${event.detail}) missed ${this.config.heartbeat.maxMissed} heartbeats; disconnected`)
  }
}
