import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Membership, MembershipSetupError } from '../membership/index.js'
import { BindError, bindReason } from '../node/errors.js'
import { Heartbeat } from '../node/heartbeat.js'
import { loadOrCreatePeerKey } from '../node/identity.js'
import { startInOrder, stopInReverse, type NamedPart } from '../node/lifecycle.js'
import { escapingLog } from '../node/escape.js'
import { consoleLog, nodeLogger, type InfoLog } from '../node/logging.js'
import { PeerDialer } from '../node/peer-dialer.js'
import { createSwarm, type Swarm, type SwarmOptions } from '../node/swarm.js'
import { Announcer } from './cluster/announcer.js'
import { cardSnapshots, type CardSnapshots } from './cluster/card-snapshot.js'
import { ClusterLog } from './cluster/cluster-log.js'
import { ClusterView } from './cluster/cluster-view.js'
import { LocalCard } from './cluster/local-card.js'
import { MembershipLink } from './cluster/membership-link.js'
import { DepartedPeers } from './cluster/departed-peers.js'
import { IdleCloser } from './cluster/idle-closer.js'
import { MeshConnector } from './cluster/mesh-connector.js'
import { NodeStates, pathDescriber } from './cluster/node-state.js'
import { AnnounceSequence } from './cluster/sequence.js'
import { AuditLog, readAudit } from './audit/audit-log.js'
import { CallerPolicy } from './caller-policy.js'
import { ClusterClient } from './cluster-client.js'
import { LocalHttpServer, RouteGroup, sendJson } from './http/local-server.js'
import { MembershipRoutes } from './http/membership-routes.js'
import { WorkRoutes } from './http/work-routes.js'
import { ClawmatrixMetrics } from './inspect/metrics.js'
import { NodeInspection } from './inspect/node-inspection.js'
import { ModelProxyService, type ModelProxyOptions } from './model-proxy/index.js'
import { ShutdownState } from './shutdown.js'
import { MANAGED, StatusRoute, UNMANAGED, type MembershipStatus, type NodeStatus } from './status.js'
import { WorkProtocols, type WorkInit } from './work.js'
import type { WorkAudit } from './audit/served-work.js'
import type { Config } from '../config/schema.js'
import type { Logger, PeerId, Startable } from '@libp2p/interface'

export interface ClawmatrixNodeInit {
  config: Config
  /** Swarm options beyond the config: only benches set them. */
  swarm?: Pick<SwarmOptions, 'releaseSockets'>
  /** Holds the peer key and the announcement sequence. */
  stateDir: string
  /** Where operator lines go; default: stderr. */
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

/** Every part of a node, built (but not started) by `ClawmatrixNode.create`. */
interface NodeParts {
  config: Config
  log: InfoLog
  metrics: ClawmatrixMetrics
  swarm: Swarm
  heartbeat: Heartbeat
  view: ClusterView
  connector: MeshConnector
  clusterLog: ClusterLog
  work: WorkProtocols
  client: ClusterClient
  modelProxy: ModelProxyService
  inspection: NodeInspection
  announcer: Announcer
  /** Every card a gossip peer holds, in one exchange when the connection opens. */
  snapshots: CardSnapshots
  dialer: PeerDialer
  http: LocalHttpServer
  status: StatusRoute
  workRoutes: WorkRoutes
  auditRoute: Startable
  shutdown: ShutdownState
  /** Closes connections opened for work once idle (on-demand mode only). */
  idleCloser?: IdleCloser
  /** Forgets what libp2p keeps about peers that left. */
  departed: DepartedPeers
  /** A managed cluster's certificates and revocations, the link to the view, the revocation routes. */
  membership?: { membership: Membership, link: MembershipLink, routes: MembershipRoutes }
}

/**
 * One clawmatrix member: the libp2p swarm and everything that runs on it,
 * built by `create` and started and stopped as one. A start that fails part
 * way stops what it had started, so no port stays bound.
 */
export class ClawmatrixNode {
  private readonly debug: Logger
  readonly config: Config
  readonly swarm: Swarm
  readonly heartbeat: Heartbeat
  /** Every member this node knows, from their cards. */
  readonly view: ClusterView
  readonly announcer: Announcer
  /** Card snapshots: asked of gossip peers as their connections open, served to any member. */
  readonly snapshots: CardSnapshots
  readonly connector: MeshConnector
  /** Keeps the configured peers connected. */
  readonly dialer: PeerDialer
  /** Hand-off, one-way message and tool proxy protocols. */
  readonly work: WorkProtocols
  /** Closes connections opened for work once idle (on-demand mode only). */
  readonly idleCloser?: IdleCloser
  /** The caller API: hand-offs, messages and tool calls to other nodes. */
  readonly client: ClusterClient
  /** The models this node hosts, the model stream protocol and the OpenAI-compatible routes. */
  readonly modelProxy: ModelProxyService
  /** The view protocol, /metrics, /clawmatrix/peers and the mesh page. */
  readonly inspection: NodeInspection
  readonly metrics: ClawmatrixMetrics
  /** Set once the host starts to stop: new work is refused with `<nodeId> is shutting down`. */
  readonly shutdown: ShutdownState
  /** A managed cluster's certificates and revocations; undefined in an unmanaged cluster. */
  readonly membership?: Membership
  /** The local HTTP endpoint every route above is served on. */
  readonly http: LocalHttpServer
  /**
   * The node's own parts in start order (see `parts`). A part starts after
   * what it uses and before what uses it. Adding one (an audit log, a
   * connection manager ...) is: build it in `create`, then name it here, in
   * its place. A layer built on a node from outside (tasks, A2A) is `extend`ed.
   */
  private readonly core: readonly NamedPart[]
  /** Layers added by `extend`: started after the core, before the HTTP endpoint opens. */
  private readonly layers: NamedPart[] = []
  private readonly log: InfoLog
  private readonly statusRoute: StatusRoute
  private running: NamedPart[] = []

  private constructor (p: NodeParts) {
    this.config = p.config
    this.log = p.log
    this.metrics = p.metrics
    this.swarm = p.swarm
    this.heartbeat = p.heartbeat
    this.view = p.view
    this.connector = p.connector
    this.work = p.work
    this.client = p.client
    this.modelProxy = p.modelProxy
    this.inspection = p.inspection
    this.announcer = p.announcer
    this.snapshots = p.snapshots
    this.dialer = p.dialer
    this.http = p.http
    this.statusRoute = p.status
    this.shutdown = p.shutdown
    this.idleCloser = p.idleCloser
    this.membership = p.membership?.membership
    const managed = p.membership
    this.debug = p.swarm.logger.forComponent('clawmatrix:node')
    this.core = [
      ['swarm', listening(p.swarm, p.config)],
      ['status', p.status],
      ['heartbeat', p.heartbeat],
      ['view', p.view],
      ['connector', p.connector],
      ...optional('idle closer', p.idleCloser),
      ['departed peers', p.departed],
      ['cluster log', p.clusterLog],
      ...optional('membership', managed?.membership),
      ...optional('membership routes', managed?.routes),
      // Work is served before the card announces it.
      ['work', p.work],
      ['work routes', p.workRoutes],
      ['audit route', p.auditRoute],
      ['model proxy', p.modelProxy],
      ['inspection', p.inspection],
      // Stopped early, while connections are up: peers drop this node at once.
      ['announcer', p.announcer],
      // Before the dialer: the first gossip connection asks for a snapshot.
      ['card snapshots', p.snapshots],
      // Drops refused peers from the view and announces a renewed certificate.
      ...optional('membership link', managed?.link),
      ['dialer', p.dialer]
    ]
  }

  /**
   * Every part in start order; `stop` runs them in reverse. The HTTP endpoint
   * is last: it opens once every route behind it is registered, and closes first.
   */
  get parts (): readonly NamedPart[] {
    return [...this.core, ...this.layers, ['http', this.http]]
  }

  /**
   * Adds a layer that uses this node (the task layer, the A2A endpoint): started
   * after the node's own parts, in the order added, and stopped before them.
   */
  extend (layer: Startable, name = `layer ${this.layers.length + 1}`): void {
    this.layers.push([name, layer])
  }

  /** Builds every part of a node from its config; nothing listens until `start`. */
  static async create (init: ClawmatrixNodeInit): Promise<ClawmatrixNode> {
    let { config } = init
    // Lines carry what members wrote (names, reasons): escaped here, once, for every sink.
    const log = escapingLog(init.log ?? consoleLog)
    const intervalMs = config.heartbeat.intervalMs
    const metrics = new ClawmatrixMetrics()
    // A managed node must have joined before it has a key: `join` installs the key its certificate names.
    const membership = config.authority == null
      ? undefined
      : await Membership.load(init.stateDir, { authority: config.authority, checkIntervalMs: config.heartbeat.intervalMs, logger: nodeLogger(config.nodeId) })
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
    const swarm = await createSwarm(config, peerKey, { ...init.swarm, metrics: metrics.libp2pMetrics(), admission: membership, onInboundRefused: message => { log.warn(message) } })
    const shutdown = new ShutdownState(config.nodeId)
    const policy = membership == null ? undefined : new CallerPolicy(config, membership)
    membership?.attach(swarm)
    const http = new LocalHttpServer({ host: config.proxyHost, port: config.proxyPort, portField: 'proxyPort', token: config.proxyToken, logger: swarm.logger })
    const heartbeat = new Heartbeat(swarm, config.heartbeat)
    const card = new LocalCard(swarm, { config, intervalMs, certificate: membership == null ? undefined : () => membership.certificate })
    const view = new ClusterView(swarm, heartbeat, card, Math.max(100, intervalMs / 2), membership)
    // The one place a caller's name is resolved: the certified name in a managed cluster, the card's otherwise.
    const callerName = (peerId: string): string | undefined => membership != null ? membership.nameOf(peerId) : view.nodeIdOf(peerId)
    const audit: WorkAudit = {
      log: new AuditLog({ stateDir: init.stateDir, logger: swarm.logger, onEntry: entry => { metrics.audited(entry.kind, entry.outcome) } }),
      callerName
    }
    const dialer = new PeerDialer(swarm, config.peers, config.reconnect)
    const describePeer = pathDescriber(new NodeStates({ view, dialer, heartbeat }), { swarm, view, heartbeat })
    const work = new WorkProtocols(swarm, config, init.stateDir, { ...init.work, admit: policy?.admit, audit }, { shutdown, nodeIdOf: callerName, describePeer })
    const client = new ClusterClient({ config, view, work, dialer, heartbeat })
    const { mode, relays, idleCloseMs, cardsPerInterval } = config.mesh
    const announcer = new Announcer({ swarm, view, heartbeat, sequence: await AnnounceSequence.load(init.stateDir), card, privateKey: peerKey, log, metrics }, { intervalMs, cardsPerInterval, mode })
    const connector = new MeshConnector(swarm, view, { mode, relays, listens: config.listen, maxRetryMs: intervalMs })
    const snapshots = cardSnapshots({
      swarm,
      view,
      ownCard: async () => announcer.signedCard(),
      // The peers this node's gossip goes through; a connection opened for work asks nothing.
      isGossipPeer: peer => dialer.isConfigured(peer) || connector.isRelay(peer),
      nameOf: peerId => view.nodeIdOf(peerId) ?? dialer.list().find(p => p.peerId === peerId)?.nodeId ?? `an unannounced peer (${peerId})`,
      log,
      metrics
    })
    const idleCloser = mode !== 'on-demand'
      ? undefined
      : new IdleCloser(swarm, {
        idleMs: idleCloseMs,
        keep: peer => connector.isRelay(peer) || dialer.isConfigured(peer) || isReservedRelay(swarm, peer),
        lastWork: peer => view.workWith(peer.toString()),
        // Kept model streams between requests: parked in this node's pool, or waiting for a caller's next request.
        idleStream: stream => modelProxy.protocol.pool?.isIdle(stream) === true || modelProxy.protocol.isWaiting(stream)
      })
    const departed = new DepartedPeers(swarm, view, { keep: peer => dialer.isConfigured(peer) || connector.isRelay(peer) })
    const modelProxy = new ModelProxyService({ ...init.modelProxy, admit: policy?.admit, config, swarm, view, http, log, metrics, refuse: shutdown.refusal, describePeer })
    return new ClawmatrixNode({
      config,
      shutdown,
      log,
      metrics,
      swarm,
      http,
      heartbeat,
      view,
      work,
      client,
      dialer,
      connector,
      idleCloser,
      departed,
      clusterLog: new ClusterLog({ swarm, view, heartbeat, log }, { maxMissed: config.heartbeat.maxMissed }),
      modelProxy,
      inspection: new NodeInspection({ config, swarm, view, http, metrics, log }),
      announcer,
      snapshots,
      status: new StatusRoute(http, { config, swarm, heartbeat, view, dialer, modelProxy, membershipStatus: membership == null ? UNMANAGED : MANAGED }),
      workRoutes: new WorkRoutes(http, client),
      auditRoute: auditRoute(http, work),
      membership: membership == null
        ? undefined
        : { membership, link: new MembershipLink({ membership, view, announcer, log }), routes: new MembershipRoutes(http, membership) }
    })
  }

  /** Who may be a member and under which name, for status and the start line. */
  get membershipStatus (): MembershipStatus {
    return this.membership == null ? UNMANAGED : MANAGED
  }

  /**
   * The name of the node a request came from, as audit lines and per-caller
   * decisions record it: the certified name in a managed cluster, the name
   * its card claims otherwise.
   */
  callerName (peerId: string): string | undefined {
    return this.membership != null ? this.membership.nameOf(peerId) : this.view.nodeIdOf(peerId)
  }

  get peerId (): PeerId {
    return this.swarm.peerId
  }

  /** Starts every part in order; if one fails, stops those already started and throws its error. */
  async start (): Promise<void> {
    if (this.running.length > 0) return
    this.running = await startInOrder(this.parts, this.onStopError)
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

  /** Stops the running parts in reverse; connections close gracefully, so peers see a close rather than a timeout. */
  async stop (): Promise<void> {
    const running = this.running
    this.running = []
    await stopInReverse(running, this.onStopError)
    this.debug('stopped')
  }

  async status (): Promise<NodeStatus> {
    return this.statusRoute.status()
  }

  private readonly onStopError = (name: string, err: any): void => {
    this.log.warn(`stopping the ${name} of ${this.config.nodeId} failed: ${err?.message ?? err}`)
  }
}

/** A part only some nodes have (a managed cluster's membership): named if present, else nothing. */
function optional (name: string, part: Startable | undefined): NamedPart[] {
  return part == null ? [] : [[name, part]]
}

/** `GET /clawmatrix/audit?after=<n>`: the work served for other nodes, from the audit log. */
function auditRoute (http: LocalHttpServer, work: WorkProtocols): Startable {
  const routes = new RouteGroup(http)
  return {
    start () {
      routes.route('GET', '/clawmatrix/audit', async (req, res) => {
        const after = Number(new URL(req.url ?? '/', 'http://local').searchParams.get('after') ?? 0)
        sendJson(res, 200, work.audit == null ? { entries: [], next: 0 } : await readAudit(work.audit.log.path, Number.isSafeInteger(after) && after > 0 ? after : 0))
      })
    },
    stop () { routes.clear() }
  }
}

/** The swarm as a part: a bind failure says which address and field, in words. */
function listening (swarm: Swarm, config: Config): Startable {
  return {
    async start () {
      try {
        await swarm.start()
      } catch (err: any) {
        throw new BindError(`cannot listen on ${config.listenHost}:${config.listenPort} (listenPort): ${bindReason(err)}`, { cause: err })
      }
    },
    async stop () {
      await swarm.stop()
    }
  }
}
