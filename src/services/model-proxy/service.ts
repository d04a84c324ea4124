/**
 * The model proxy of one node, started and stopped as one: the models it
 * hosts, the mesh protocol that serves them to other nodes and carries this
 * node's requests to theirs, and the OpenAI-compatible HTTP routes.
 */
import { isLoopback } from '../../config/addresses.js'
import { libp2pComponents } from '../wire/components.js'
import type { StreamProtocolInit } from '../protocols/common.js'
import { LocalModels, type ResolveModelTarget } from './local-models.js'
import { ModelStreamProtocol } from './model-protocol.js'
import { ModelProxy, type ModelProxyObserver } from './model-proxy.js'
import { registerModelRoutes } from './http-routes.js'
import { metricsObserver, type RequestMetrics } from './metrics.js'
import { HostHealth } from './host-health.js'
import { UsageLedger } from './usage.js'
import { RouteGroup, sendJson } from '../http/local-server.js'
import type { Config } from '../../config/schema.js'
import type { ClusterView } from '../cluster/cluster-view.js'
import type { LocalHttpServer } from '../http/local-server.js'
import type { Swarm } from '../../node/swarm.js'
import type { UpstreamOptions } from './local-models.js'
import type { PeerDescriber } from '../wire/path.js'
import type { Startable } from '@libp2p/interface'

/** What an embedder (the OpenClaw plugin, a test) may supply; all optional. */
export interface ModelProxyOptions {
  /** Upstream URL and key per model; default: the model's config entry and its apiKeyEnv. */
  resolveTarget?: ResolveModelTarget
  /** Told about every request, for metrics. */
  observer?: ModelProxyObserver
  /** Timeouts of the upstream adapters, and how long a kept connection to an upstream may idle. */
  upstream?: UpstreamOptions
  /** Per-caller policy (managed clusters' models[].allowFrom): a refusal before a request is served. */
  admit?: StreamProtocolInit['admit']
}

export interface ModelProxyServiceInit extends ModelProxyOptions {
  config: Pick<Config, 'nodeId' | 'models' | 'proxyHost' | 'proxyToken'> & { modelRouting?: Partial<Config['modelRouting']> }
  swarm: Pick<Swarm, 'handle' | 'unhandle' | 'dial' | 'dialProtocol' | 'logger'>
  view: ClusterView
  http: Pick<LocalHttpServer, 'route'>
  log: { warn(message: string): void }
  /** The node's metrics (src/services/inspect), fed with every request. */
  metrics?: RequestMetrics
  /** A reason to refuse requests from other nodes (this node is shutting down). */
  refuse?: () => string | undefined
  /** Names peers and says their state in errors (a relay that died under a request). */
  describePeer?: PeerDescriber
}

export class ModelProxyService implements Startable {
  readonly local: LocalModels
  readonly protocol: ModelStreamProtocol
  readonly proxy: ModelProxy
  /** Token usage through this node's proxy and served for others. */
  readonly usage = new UsageLedger()
  readonly health: HostHealth
  private readonly routes: RouteGroup
  private started = false

  constructor (private readonly init: ModelProxyServiceInit) {
    const { config } = init
    let observer = init.observer
    this.local = new LocalModels({
      models: config.models,
      resolveTarget: init.resolveTarget,
      upstream: init.upstream,
      warn: message => { init.log.warn(message) },
      logger: init.swarm.logger
    })
    this.protocol = new ModelStreamProtocol(libp2pComponents(init.swarm), {
      models: this.local,
      refuse: init.refuse,
      admit: init.admit,
      describePeer: init.describePeer,
      reuseStreams: config.modelRouting?.reuseStreams,
      maxIdleStreamsPerHost: config.modelRouting?.idleStreamsPerHost,
      idleStreamMs: config.modelRouting?.idleStreamMs,
      probeAfterMs: config.modelRouting?.probeAfterMs,
      probeTimeoutMs: config.modelRouting?.probeTimeoutMs,
      onServed: served => {
        if (served.usage != null) this.usage.record('served', { model: served.model, host: config.nodeId, caller: init.view.nodeIdOf(served.from) ?? served.from }, served.usage)
        observer?.served?.(served)
      }
    })
    this.health = new HostHealth({ cooldownFailures: config.modelRouting?.cooldownFailures, cooldownMs: config.modelRouting?.cooldownMs })
    if (init.metrics != null) observer = metricsObserver(init.metrics, this.protocol.protocol, init.observer, { nodeId: config.nodeId, nodeIdOf: peerId => init.view.nodeIdOf(peerId) ?? peerId, health: this.health })
    this.proxy = new ModelProxy({ view: init.view, protocol: this.protocol, local: this.local, observer, health: this.health, usage: this.usage, nodeId: config.nodeId, logger: init.swarm.logger })
    this.routes = new RouteGroup(init.http)
  }

  async start (): Promise<void> {
    const { proxyHost, proxyToken } = this.init.config
    if (!isLoopback(proxyHost) && (proxyToken == null || proxyToken === '')) {
      this.init.log.warn(`the model proxy listens on ${proxyHost} without a proxyToken: anyone who reaches that address can use the cluster's models`)
    }
    await this.local.start()
    await this.protocol.start()
    this.init.view.addEventListener('node:left', this.onLeft)
    registerModelRoutes(this.routes, this.proxy, { logger: this.init.swarm.logger })
    this.routes.route('GET', '/clawmatrix/usage', async (_req, res) => { sendJson(res, 200, { nodeId: this.init.config.nodeId, ...this.usage.report() }) })
    this.started = true
  }

  async stop (): Promise<void> {
    this.routes.clear()
    this.init.view.removeEventListener('node:left', this.onLeft)
    await this.protocol.stop()
    await this.local.stop()
    this.started = false
  }

  private readonly onLeft = (event: CustomEvent<{ card: { peerId: string } }>): void => {
    this.health.forget(event.detail.card.peerId)
  }

  isStarted (): boolean {
    return this.started
  }
}
