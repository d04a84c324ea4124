/**
 * The requesting side: turns a client's model request into an answer from
 * whichever node hosts the model, trying hosts in the cluster view's order
 * until one starts answering. The node itself, when it hosts the model, is
 * served without the mesh.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { logger } from '@libp2p/logger'
import { firstAccepting, NoCandidateAcceptedError } from '../wire/index.js'
import { UpstreamError } from '../models/errors.js'
import { MODEL_PREFIX, UnknownTargetError, type Candidate } from '../cluster/routing.js'
import { HostRefusedError, noHostAvailable, unknownModel } from './errors.js'
import type { ClusterView } from '../cluster/cluster-view.js'
import type { ModelResponse, ModelRoute } from '../models/upstream.js'
import type { LocalModels } from './local-models.js'
import type { ModelStreamProtocol, ServedRequest } from './model-protocol.js'

export interface ProxyRequest {
  /** `id` or `clawmatrix/id`. */
  model: string
  route: ModelRoute
  /** The client's JSON body. */
  body: Record<string, unknown>
}

export interface ProxiedResponse extends ModelResponse {
  /** The node answering. */
  host: { nodeId: string, peerId: string, local: boolean }
  /** Hosts that refused or could not be reached before this one answered. */
  failovers: number
}

/** One model offered in the cluster, and the nodes that host it. */
export interface ClusterModel {
  id: string
  provider: string
  description?: string
  nodes: string[]
}

/** How one request through this node's proxy went, reported when its answer ended. */
export interface ProxiedRequestRecord {
  model: string
  route: ModelRoute
  stream: boolean
  /** The node that answered, or the last one tried. */
  host?: string
  local: boolean
  /**
   * ok: answered in full. cut: the answer broke off mid-way. cancelled: the
   * client left. error: no answer (unknown model, no host, a refusal).
   */
  outcome: 'ok' | 'cut' | 'cancelled' | 'error'
  /** The HTTP status answered, or the error's. */
  status: number
  failovers: number
  /** From the request to the first body chunk. */
  firstChunkMs?: number
  durationMs: number
  bytes: number
}

/**
 * Receives what the proxy did, for metrics. Both methods are optional and
 * called synchronously; they must not throw.
 */
export interface ModelProxyObserver {
  /** A request through this node's proxy ended. */
  requested?(record: ProxiedRequestRecord): void
  /** This node served a request for another node. */
  served?(record: ServedRequest): void
}

export interface ModelProxyInit {
  view: Pick<ClusterView, 'resolveModel' | 'track' | 'nodes'>
  protocol: Pick<ModelStreamProtocol, 'request'>
  local: Pick<LocalModels, 'refusal' | 'request'>
  observer?: ModelProxyObserver
}

export interface ProxyOptions {
  signal?: AbortSignal
}

export class ModelProxy {
  private readonly log = logger('clawmatrix:model-proxy')

  constructor (private readonly init: ModelProxyInit) {}

  /** Every model offered in the cluster, by id. */
  models (): ClusterModel[] {
    const byId = new Map<string, ClusterModel>()
    for (const node of this.init.view.nodes()) {
      for (const model of node.models) {
        const entry = byId.get(model.id) ?? { id: model.id, provider: model.provider, description: model.description, nodes: [] }
        entry.nodes.push(node.nodeId)
        byId.set(model.id, entry)
      }
    }
    return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id))
  }

  /**
   * Resolves once a host of the model started answering. Throws an
   * UpstreamError a client can be answered with: 404 for a model the
   * cluster does not offer, 503 when no host could be reached or took it,
   * an upstream's own error when that is what stopped it. Aborting the
   * signal, before or during the answer, cancels the upstream request.
   */
  async request (request: ProxyRequest, options: ProxyOptions = {}): Promise<ProxiedResponse> {
    let candidates: Candidate[]
    try {
      candidates = this.init.view.resolveModel(request.model)
    } catch (err: any) {
      const error = err instanceof UnknownTargetError ? unknownModel(err.message) : err
      this.report(request, { outcome: 'error', status: error instanceof UpstreamError ? error.status : 500, local: false, failovers: 0, durationMs: 0, bytes: 0 })
      throw error
    }
    return this.forward(candidates, request, options)
  }

  /** Like request(), to the given hosts in order: for callers that picked them themselves. */
  async forward (candidates: Candidate[], request: ProxyRequest, options: ProxyOptions = {}): Promise<ProxiedResponse> {
    const started = performance.now()
    const model = request.model.startsWith(MODEL_PREFIX) ? request.model.slice(MODEL_PREFIX.length) : request.model
    const signal = options.signal ?? new AbortController().signal
    const byPeer = new Map(candidates.map(candidate => [candidate.peerId, candidate]))
    let tried: Candidate | undefined
    let failovers = -1
    try {
      const answered = await firstAccepting(candidates.map(candidate => peerIdFromString(candidate.peerId)), async peer => {
        const candidate = tried = byPeer.get(peer.toString())!
        failovers++
        try {
          return { response: await this.attempt(candidate, model, request, signal), candidate }
        } catch (err) {
          // An answer every host would give ends the search: it is the answer.
          if (err instanceof HostRefusedError && err.final) return { final: err.upstream! }
          this.log('%s refused or failed %s: %s', candidate.nodeId, model, (err as Error).message)
          throw err
        }
      }, signal)
      if ('final' in answered) throw answered.final
      const { response, candidate } = answered
      const release = this.init.view.track(candidate.peerId)
      const host = { nodeId: candidate.nodeId, peerId: candidate.peerId, local: candidate.reach === 'self' }
      return {
        ...response,
        host,
        failovers,
        body: this.measured(response.body, request, { host: host.nodeId, local: host.local, failovers, status: response.status }, started, release)
      }
    } catch (err) {
      if (signal.aborted) {
        this.report(request, { outcome: 'cancelled', status: 499, host: tried?.nodeId, local: tried?.reach === 'self', failovers: Math.max(failovers, 0), durationMs: performance.now() - started, bytes: 0 })
        throw signal.reason
      }
      const error = err instanceof UpstreamError ? err : exhausted(request.model, candidates, err)
      this.report(request, { outcome: 'error', status: error.status, host: tried?.nodeId, local: tried?.reach === 'self', failovers: Math.max(failovers, 0), durationMs: performance.now() - started, bytes: 0 })
      throw error
    }
  }

  /** One host: this node's own upstream, or a host over the mesh. */
  private async attempt (candidate: Candidate, model: string, request: ProxyRequest, signal: AbortSignal): Promise<ModelResponse> {
    const release = this.init.view.track(candidate.peerId)
    try {
      if (candidate.reach !== 'self') {
        return await this.init.protocol.request(peerIdFromString(candidate.peerId), { type: 'model', model, route: request.route, body: request.body }, signal)
      }
      const refusal = this.init.local.refusal(model)
      if (refusal != null) throw new HostRefusedError(refusal.code, refusal.message)
      try {
        return await this.init.local.request(model, { route: request.route, body: request.body, signal })
      } catch (err) {
        if (err instanceof UpstreamError && !signal.aborted) throw new HostRefusedError('upstream-error', err.message, err)
        throw err
      }
    } finally {
      release()
    }
  }

  /** Passes the body through, counting it, and reports the request when it ends. */
  private async * measured (
    body: AsyncIterable<Uint8Array>,
    request: ProxyRequest,
    record: Pick<ProxiedRequestRecord, 'host' | 'local' | 'failovers' | 'status'>,
    started: number,
    release: () => void
  ): AsyncGenerator<Uint8Array> {
    let outcome: ProxiedRequestRecord['outcome'] = 'cancelled'
    let status = record.status
    let firstChunkMs: number | undefined
    let bytes = 0
    try {
      for await (const chunk of body) {
        firstChunkMs ??= performance.now() - started
        bytes += chunk.byteLength
        yield chunk
      }
      outcome = 'ok'
    } catch (err) {
      if (err instanceof UpstreamError) {
        outcome = 'cut'
        status = err.status
      }
      throw err
    } finally {
      release()
      this.report(request, { ...record, outcome, status, firstChunkMs, durationMs: performance.now() - started, bytes })
    }
  }

  private report (request: ProxyRequest, record: Omit<ProxiedRequestRecord, 'model' | 'route' | 'stream'>): void {
    const requested = this.init.observer?.requested
    if (requested == null) return
    try {
      requested({ model: request.model, route: request.route, stream: request.body.stream === true, ...record })
    } catch (err: any) {
      this.log.error('the model proxy observer failed: %e', err)
    }
  }
}

/**
 * Every host failed before answering. An upstream's own error is the most
 * useful answer (its status tells the client whether to retry); otherwise
 * the hosts were unreachable or refused: 503.
 */
function exhausted (model: string, candidates: Candidate[], err: unknown): UpstreamError {
  const failures = err instanceof NoCandidateAcceptedError
    ? err.failures.map(f => ({ peer: f.peer, error: f.error }))
    : [{ peer: candidates[0]?.peerId ?? '', error: err as Error }]
  const nodeOf = (peer: string): string => candidates.find(c => c.peerId === peer)?.nodeId ?? peer
  const summary = failures.map(f => `${nodeOf(f.peer)}: ${f.error.message}`).join('; ')
  const upstream = failures.map(f => f.error instanceof HostRefusedError ? f.error.upstream : undefined).filter(e => e != null).at(-1)
  if (upstream != null) {
    if (failures.length === 1) return upstream
    return new UpstreamError(upstream.status, { ...upstream.body, error: { ...upstream.body.error, message: `${upstream.body.error.message} (every host failed: ${summary})` } })
  }
  return noHostAvailable(`no host of model "${model}" could take the request: ${summary}`)
}
