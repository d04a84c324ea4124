import { VERSION } from '../../version.js'
import { RouteGroup, sendJson } from '../http/local-server.js'
import { libp2pComponents } from '../wire/components.js'
import { PAGE_REFRESH_MS } from './constants.js'
import { meshReport } from './mesh.js'
import { meshPage, PAGE_CSP } from './page.js'
import { health } from './health.js'
import { peersReport } from './peers.js'
import { RelayMetrics } from './relay-metrics.js'
import { RelayBudget } from '../../node/relay-budget.js'
import { ViewProtocol } from './view-protocol.js'
import type { ClawmatrixMetrics } from './metrics.js'
import type { Config } from '../../config/schema.js'
import type { Swarm } from '../../node/swarm.js'
import type { ClusterView } from '../cluster/cluster-view.js'
import type { LocalHttpServer } from '../http/local-server.js'
import type { Startable } from '@libp2p/interface'

export interface InspectableNode {
  config: Pick<Config, 'nodeId'> & { limits?: Pick<Config['limits'], 'relayedBytesPerMemberPerMinute'> }
  swarm: Swarm
  view: ClusterView
  http: LocalHttpServer
  metrics: ClawmatrixMetrics
  /** Where a member going over its relayed-bandwidth cap is said. */
  log?: { warn(message: string): void }
}

/**
 * What lets operators see a node without reading its logs: the view protocol
 * for `clawmatrix inspect`, and on the loopback HTTP server `GET /metrics`,
 * `GET /clawmatrix/peers`, `GET /clawmatrix/mesh`, the mesh page at
 * `GET /clawmatrix/`, and the open `GET /healthz`.
 */
export class NodeInspection implements Startable {
  readonly view: ViewProtocol
  readonly relay: RelayMetrics
  private readonly routes: RouteGroup

  constructor (private readonly node: InspectableNode) {
    const { swarm, view, config } = node
    this.view = new ViewProtocol(libp2pComponents(swarm), {
      snapshot: () => ({ nodeId: config.nodeId, peerId: swarm.peerId.toString(), version: VERSION, nodes: view.nodes() })
    })
    const cap = config.limits?.relayedBytesPerMemberPerMinute
    const budget = cap == null
      ? undefined
      : new RelayBudget({
        bytesPerMinute: cap,
        onOver: (peerId, sent) => {
          node.log?.warn(`${view.nodeIdOf(peerId) ?? 'an unannounced peer'} (${peerId}) sent ${sent} bytes through this relay within a minute, over limits.relayedBytesPerMemberPerMinute (${cap}): its circuits are cut until the minute is over`)
        }
      })
    this.relay = new RelayMetrics(swarm, node.metrics.registry, budget)
    this.routes = new RouteGroup(node.http)
  }

  async start (): Promise<void> {
    const { swarm, view, config, metrics } = this.node
    await this.view.start()
    await this.relay.start()
    metrics.observe({
      nodes: () => view.nodes(),
      meshPeers: () => meshPeers(swarm),
      connections: () => swarm.getConnections()
    }, { nodeId: config.nodeId, peerId: swarm.peerId, version: VERSION })
    this.serve()
  }

  async stop (): Promise<void> {
    this.routes.clear()
    this.relay.stop()
    await this.view.stop()
  }

  private serve (): void {
    const { swarm, view, config, metrics } = this.node
    const http = this.routes
    // Open, and it says only ok or a fixed reason (./health.ts): probes carry no token.
    http.route('GET', '/healthz', (_req, res) => {
      const result = health(swarm)
      sendJson(res, result.status === 'ok' ? 200 : 503, result)
    }, { open: true })
    http.route('GET', '/metrics', async (_req, res) => {
      const text = await metrics.text()
      res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) })
      res.end(text)
    })
    http.route('GET', '/clawmatrix/peers', (_req, res) => { sendJson(res, 200, peersReport(swarm, view, config.nodeId)) })
    http.route('GET', '/clawmatrix/mesh', (_req, res) => { sendJson(res, 200, meshReport(swarm, view)) })
    const page = meshPage(PAGE_REFRESH_MS)
    http.route('GET', '/clawmatrix/', (_req, res) => {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(page),
        'content-security-policy': PAGE_CSP,
        'cache-control': 'no-store'
      })
      res.end(page)
    }, { open: true }) // the page holds no data; what it fetches is guarded (token from #token=...)
    http.route('GET', '/clawmatrix', (_req, res) => {
      res.writeHead(301, { location: '/clawmatrix/' })
      res.end()
    }, { open: true })
  }
}

/** Mesh peers per subscribed topic. The implementation has `getMeshPeers`; the exported interface does not declare it. */
function meshPeers (swarm: Swarm): Record<string, number> {
  const pubsub = swarm.services.pubsub as Swarm['services']['pubsub'] & { getMeshPeers?: (topic: string) => string[] }
  return Object.fromEntries(pubsub.getTopics().map(topic => [topic, pubsub.getMeshPeers?.(topic).length ?? 0]))
}
