/**
 * The requesting side: turns a client's model request into an answer from
 * whichever node hosts the model, trying hosts in the cluster view's order
 * until one starts answering. The node itself, when it hosts the model, is
 * served without the mesh.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { NoCandidateAcceptedError, PathLostError, SilentConnectionError } from '../wire/errors.js'
import { firstAccepting } from '../wire/failover.js'
import { UpstreamError } from '../models/errors.js'
import { MODEL_PREFIX, type Candidate } from '../cluster/routing.js'
import { UnknownTargetError } from '../errors.js'
import { badRequest, clusterSaturated, HostRefusedError, noHostAvailable, unknownModel } from './errors.js'
import { FINAL_UPSTREAM_STATUSES } from './constants.js'
import { HostHealth } from './host-health.js'
import { renameModel } from './rename-model.js'
import { modelsOffered, type ClusterModel, type ClusterView } from '../cluster/cluster-view.js'
import type { ModelResponse, ModelRoute, TokenUsage } from '../models/upstream.js'
import type { LocalModels } from './local-models.js'
import type { HostResponse, ModelStreamProtocol, ServedRequest } from './model-protocol.js'
import type { LoadField, ModelRequestFrame } from './messages.js'
import { isBusy } from './local-models.js'
import { mark } from '../wire/trace.js'
import type { UsageLedger } from './usage.js'
import type { ComponentLogger, Logger, PeerId } from '@libp2p/interface'

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
  /** The model that answered (without `clawmatrix/`): the one asked for, or a fallback. */
  model: string
  /** Hosts that refused or could not be reached before this one answered. */
  failovers: number
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
  /** The upstream's token usage, when it said. */
  usage?: TokenUsage
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
  protocol: Pick<ModelStreamProtocol, 'request' | 'pool'>
  local: Pick<LocalModels, 'refusal' | 'request' | 'load'>
  observer?: ModelProxyObserver
  /** Failures in a row and load per host; a default one (LiteLLM's 3 failures, 60 s) when absent. */
  health?: HostHealth
  /** Where token usage is summed. */
  usage?: UsageLedger
  /** This node's id: the calling node in usage rows. */
  nodeId?: string
  /** The node's logger (../node/logging.ts `nodeLogger`), so every line says which node it is. */
  logger: ComponentLogger
}

/** `clawmatrix` in a request body holds options for the proxy; it never reaches an upstream. */
interface ClawmatrixOptions {
  fallbacks?: string[]
}

const MAX_FALLBACKS = 16
/** Decoded host ids kept; past it the cache starts over (hosts come and go). */
const MAX_PEER_IDS_KEPT = 1024
const REACH_RANK = { self: 0, direct: 1, relayed: 2, unreachable: 3 }

export interface ProxyOptions {
  signal?: AbortSignal
}

export class ModelProxy {
  private readonly log: Logger
  readonly health: HostHealth
  private readonly peers = new Map<string, PeerId>()

  constructor (private readonly init: ModelProxyInit) {
    this.log = init.logger.forComponent('clawmatrix:model-proxy')
    this.health = init.health ?? new HostHealth()
  }

  /** Every model offered in the cluster, by id. */
  models (): ClusterModel[] {
    return modelsOffered(this.init.view.nodes())
  }

  /**
   * Resolves once a host of the model started answering. Throws an
   * UpstreamError a client can be answered with: 404 for a model the
   * cluster does not offer, 503 when no host could be reached or took it,
   * an upstream's own error when that is what stopped it. Aborting the
   * signal, before or during the answer, cancels the upstream request.
   */
  async request (request: ProxyRequest, options: ProxyOptions = {}): Promise<ProxiedResponse> {
    let extra: ClawmatrixOptions
    try {
      extra = clawmatrixOptions(request.body)
    } catch (err) {
      this.report(request, { outcome: 'error', status: 400, local: false, failovers: 0, durationMs: 0, bytes: 0 })
      throw err
    }
    const body = extra === NO_OPTIONS ? request.body : withoutOptions(request.body)
    const asked = modelId(request.model)
    const tried = new Set<string>()
    let fallbacks = extra.fallbacks
    let lastError: UpstreamError | undefined
    const errors: UpstreamError[] = []
    for (let i = 0; ; i++) {
      // The chain is read only once the model asked for failed: the common case never looks.
      const model = i === 0 ? asked : (fallbacks ??= this.fallbacksOf(asked))[i - 1]
      if (model == null) break
      if (tried.has(model)) continue
      tried.add(model)
      const attempt = { ...request, model, body }
      let candidates: Candidate[]
      try {
        candidates = this.init.view.resolveModel(model)
      } catch (err: any) {
        const error = err instanceof UnknownTargetError ? unknownModel(err.message) : err
        this.report(attempt, { outcome: 'error', status: error instanceof UpstreamError ? error.status : 500, local: false, failovers: 0, durationMs: 0, bytes: 0 })
        if (!(error instanceof UpstreamError)) throw error
        lastError ??= error
        errors.push(error)
        continue
      }
      try {
        const answer = await this.forward(candidates, attempt, options)
        if (model === asked) return answer
        this.log('%s served a request for %s as its fallback', model, asked)
        return { ...answer, body: renameModel(answer.body, answer.contentType, model) }
      } catch (err) {
        // A request every host would refuse (400) is not retried with another model, nor a cancelled one.
        if (!(err instanceof UpstreamError) || options.signal?.aborted === true || FINAL_UPSTREAM_STATUSES.has(err.status)) throw err
        lastError = err
        errors.push(err)
      }
    }
    if (errors.length > 1 && errors.every(e => e.status === 429 && e.retryAfterSeconds != null)) {
      throw clusterSaturated(`every host of ${[...tried].map(m => `"${m}"`).join(' and its fallbacks ')} is busy`, Math.min(...errors.map(e => e.retryAfterSeconds!)))
    }
    throw lastError ?? unknownModel(`unknown model "${request.model}"`)
  }

  /** The fallbacks hosts announce for `model`, in order, without repeats. */
  private fallbacksOf (model: string): string[] {
    const chain: string[] = []
    for (const node of this.init.view.nodes()) {
      for (const offered of node.models) {
        if (offered.id !== model) continue
        for (const fallback of offered.fallbacks ?? []) if (!chain.includes(fallback)) chain.push(fallback)
      }
    }
    return chain.slice(0, MAX_FALLBACKS)
  }

  /** A host's PeerId, decoded once rather than on every request. */
  private peerOf (peerId: string): PeerId {
    let peer = this.peers.get(peerId)
    if (peer == null) {
      if (this.peers.size >= MAX_PEER_IDS_KEPT) this.peers.clear()
      this.peers.set(peerId, peer = peerIdFromString(peerId))
    }
    return peer
  }

  /** Hosts that failed lately or are cooling down, with their node ids: for status. */
  routingStatus (): { cooldowns: ReturnType<HostHealth['rows']>, keptStreams?: Record<string, number> } {
    const names = new Map(this.init.view.nodes().map(n => [n.peerId, n.nodeId]))
    const status: ReturnType<ModelProxy['routingStatus']> = { cooldowns: this.health.rows(peerId => names.get(peerId)) }
    // Idle model streams kept per host (modelRouting.reuseStreams), by node name.
    const kept = this.init.protocol.pool?.idleCounts()
    if (kept != null) status.keptStreams = Object.fromEntries(Object.entries(kept).map(([peerId, count]) => [names.get(peerId) ?? peerId, count]))
    return status
  }

  /**
   * Hosts cooling down are left out; a host known to be at its
   * maxConcurrent goes last; among hosts reached alike, the least busy
   * first. Otherwise the view's order (distance, round-trip time) holds.
   */
  private order (candidates: Candidate[], model: string): { usable: Candidate[], coolingMs: number[] } {
    const coolingMs: number[] = []
    const ranked: Array<{ candidate: Candidate, full: number, reach: number, busy: number, index: number }> = []
    candidates.forEach((candidate, index) => {
      const cooling = this.health.coolingFor(candidate.peerId, model)
      if (cooling > 0) {
        coolingMs.push(cooling)
        return
      }
      const busy = candidate.reach === 'self' ? localUtilization(this.init.local.load(model)) : this.health.utilization(candidate.peerId, model)
      ranked.push({ candidate, full: busy != null && busy >= 1 ? 1 : 0, reach: REACH_RANK[candidate.reach], busy: busy ?? 0, index })
    })
    if (ranked.every(r => r.full === 0 && r.busy === 0)) return { usable: ranked.map(r => r.candidate), coolingMs }
    ranked.sort((a, b) => a.full - b.full || a.reach - b.reach || a.busy - b.busy || a.index - b.index)
    return { usable: ranked.map(r => r.candidate), coolingMs }
  }

  /** Like request(), to the given hosts in order: for callers that picked them themselves. */
  async forward (candidates: Candidate[], request: ProxyRequest, options: ProxyOptions = {}): Promise<ProxiedResponse> {
    const started = performance.now()
    const model = modelId(request.model)
    const signal = options.signal ?? new AbortController().signal
    const { usable, coolingMs } = this.order(candidates, model)
    const byPeer = new Map(usable.map(candidate => [this.peerOf(candidate.peerId), candidate]))
    let tried: Candidate | undefined
    let lastHosts = usable
    let failovers = -1
    try {
      if (usable.length === 0) {
        const seconds = Math.ceil(Math.min(...coolingMs) / 1000)
        throw clusterSaturated(`every host of model "${model}" is cooling down after failing ${candidates.map(c => c.nodeId).join(', ')}`, seconds)
      }
      const tryHosts = async (hosts: Candidate[], wait: boolean): Promise<Attempted> => firstAccepting(hosts.map(c => this.peerOf(c.peerId)), async peer => {
        const candidate = tried = byPeer.get(peer)!
        failovers++
        try {
          // Only a host with another behind it is left early for a silent connection (ModelRequestOptions.lastResort).
          const lastResort = candidate === hosts.at(-1)
          return { response: await this.attempt(candidate, peer, model, request, signal, wait, lastResort), candidate }
        } catch (err) {
          // An answer every host would give ends the search: it is the answer.
          if (err instanceof HostRefusedError && err.final) return { final: err.upstream! }
          if (err instanceof HostRefusedError) this.health.reportLoad(candidate.peerId, model, err.load)
          // Busy is not broken: a full host does not cool down; nor does one whose relay died under the request,
          // nor one whose connection went silent (it may be only stalled; dead connections are the heartbeat's).
          const healthy = (err instanceof HostRefusedError && err.code === 'busy') || err instanceof PathLostError || err instanceof SilentConnectionError
          if (!signal.aborted && !healthy && this.health.failed(candidate.peerId, model)) {
            this.log('%s failed %s too often in a row: skipped while it cools down', candidate.nodeId, model)
          }
          this.log('%s refused or failed %s: %s', candidate.nodeId, model, (err as Error).message)
          throw err
        }
      }, signal)
      let answered: Attempted
      try {
        answered = await tryHosts(usable, false)
      } catch (err) {
        // Every host said busy before: the request waits in the queue of one that has room.
        const queues = signal.aborted ? [] : withQueueRoom(usable, err)
        if (queues.length === 0) throw err
        this.log('every host of %s is at its limit: queued at %s', model, queues[0]!.nodeId)
        lastHosts = queues
        answered = await tryHosts(queues, true)
      }
      if ('final' in answered) throw answered.final
      const { response, candidate } = answered
      this.health.succeeded(candidate.peerId, model)
      this.health.reportLoad(candidate.peerId, model, response.load)
      const release = this.init.view.track(candidate.peerId)
      const host = { nodeId: candidate.nodeId, peerId: candidate.peerId, local: candidate.reach === 'self' }
      return {
        ...response,
        host,
        model,
        failovers,
        body: this.measured(response, request, { host: host.nodeId, local: host.local, failovers, status: response.status }, started, () => {
          release()
        }, candidate.peerId)
      }
    } catch (err) {
      if (signal.aborted) {
        this.report(request, { outcome: 'cancelled', status: 499, host: tried?.nodeId, local: tried?.reach === 'self', failovers: Math.max(failovers, 0), durationMs: performance.now() - started, bytes: 0 })
        throw signal.reason
      }
      const error = err instanceof UpstreamError ? err : exhausted(model, lastHosts, err, coolingMs)
      this.report(request, { outcome: 'error', status: error.status, host: tried?.nodeId, local: tried?.reach === 'self', failovers: Math.max(failovers, 0), durationMs: performance.now() - started, bytes: 0 })
      throw error
    }
  }

  /** One host: this node's own upstream, or a host over the mesh. */
  private async attempt (candidate: Candidate, peer: PeerId, model: string, request: ProxyRequest, signal: AbortSignal, wait: boolean, lastResort: boolean): Promise<HostResponse> {
    const release = this.init.view.track(candidate.peerId)
    try {
      mark('caller: route resolved')
      if (candidate.reach !== 'self') {
        const frame: ModelRequestFrame = { type: 'model', model, route: request.route, body: request.body }
        if (wait) frame.wait = true
        return await this.init.protocol.request(peer, frame, signal, { lastResort })
      }
      const local = this.init.local
      const refusal = local.refusal(model, { wait })
      if (refusal != null) throw refused(refusal.code, refusal.message, local.load(model))
      try {
        return await local.request(model, { route: request.route, body: request.body, signal }, { wait })
      } catch (err) {
        if (signal.aborted) throw err
        if (isBusy(err)) throw refused('busy', (err as Error).message, local.load(model))
        if (err instanceof UpstreamError) throw new HostRefusedError('upstream-error', err.message, err)
        throw err
      }
    } finally {
      release()
    }
  }

  /** Passes the body through, counting it, and reports the request when it ends. */
  private async * measured (
    response: ModelResponse,
    request: ProxyRequest,
    record: Pick<ProxiedRequestRecord, 'host' | 'local' | 'failovers' | 'status'>,
    started: number,
    release: () => void,
    peerId: string
  ): AsyncGenerator<Uint8Array> {
    let outcome: ProxiedRequestRecord['outcome'] = 'cancelled'
    let status = record.status
    let firstChunkMs: number | undefined
    let bytes = 0
    let usage: TokenUsage | undefined
    try {
      for await (const chunk of response.body) {
        firstChunkMs ??= performance.now() - started
        bytes += chunk.byteLength
        yield chunk
      }
      outcome = 'ok'
      usage = response.usage?.()
      if (usage != null) this.init.usage?.record('requested', { model: modelId(request.model), host: record.host ?? '', caller: this.init.nodeId ?? '' }, usage)
    } catch (err) {
      if (err instanceof UpstreamError) {
        outcome = 'cut'
        status = err.status
        this.health.failed(peerId, modelId(request.model))
      }
      throw err
    } finally {
      release()
      this.report(request, { ...record, outcome, status, firstChunkMs, durationMs: performance.now() - started, bytes, usage })
    }
  }

  private report (request: ProxyRequest, record: Omit<ProxiedRequestRecord, 'model' | 'route' | 'stream'>): void {
    const requested = this.init.observer?.requested
    if (requested == null) return
    try {
      requested({ model: modelId(request.model), route: request.route, stream: request.body.stream === true, ...record })
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
function exhausted (model: string, candidates: Candidate[], err: unknown, coolingMs: number[]): UpstreamError {
  const failures = err instanceof NoCandidateAcceptedError
    ? err.failures.map(f => ({ peer: f.peer, error: f.error }))
    : [{ peer: candidates[0]?.peerId ?? '', error: err as Error }]
  const nodeOf = (peer: string): string => candidates.find(c => c.peerId === peer)?.nodeId ?? peer
  const summary = failures.map(f => `${nodeOf(f.peer)}: ${f.error.message}`).join('; ')
  // Full, not broken: the client should come back shortly rather than give up.
  if (failures.every(f => f.error instanceof HostRefusedError && f.error.code === 'busy')) {
    const cooling = coolingMs.length === 0 ? '' : ` (${coolingMs.length} more cooling down after failures)`
    return clusterSaturated(`every host of model "${model}" is at its limit${cooling}: ${summary}`, BUSY_RETRY_AFTER_S)
  }
  const upstream = failures.map(f => f.error instanceof HostRefusedError ? f.error.upstream : undefined).filter(e => e != null).at(-1)
  if (upstream != null) {
    if (failures.length === 1) return upstream
    return new UpstreamError(upstream.status, { ...upstream.body, error: { ...upstream.body.error, message: `${upstream.body.error.message} (every host failed: ${summary})` } })
  }
  return noHostAvailable(`no host of model "${model}" could take the request: ${summary}`)
}

/** One host's try: its answer, or an upstream answer every host would give. */
type Attempted = { response: HostResponse, candidate: Candidate } | { final: UpstreamError }

function refused (code: string, message: string, load: LoadField): HostRefusedError {
  const error = new HostRefusedError(code, message)
  error.load = load
  return error
}

/**
 * The hosts that refused as busy but said their queue had room, least
 * queued first: where a request waits once no host could take it at once.
 */
function withQueueRoom (hosts: Candidate[], err: unknown): Candidate[] {
  const failures = err instanceof NoCandidateAcceptedError ? err.failures.map(f => ({ peer: f.peer, error: f.error })) : [{ peer: hosts[0]?.peerId, error: err }]
  if (!failures.every(f => f.error instanceof HostRefusedError && f.error.code === 'busy')) return []
  const room = (load?: LoadField): number => load?.maxQueued == null ? 0 : (load.maxQueued - (load.queued ?? 0)) / load.maxQueued
  return failures
    .map(f => ({ candidate: hosts.find(c => c.peerId === f.peer), room: room((f.error as HostRefusedError).load) }))
    .filter((f): f is { candidate: Candidate, room: number } => f.candidate != null && f.room > 0)
    .sort((a, b) => b.room - a.room)
    .map(f => f.candidate)
}

/** Retry-After for a cluster whose hosts are all busy: requests are short-lived, a second frees slots. */
const BUSY_RETRY_AFTER_S = 1


const NO_OPTIONS: ClawmatrixOptions = {}

function modelId (model: string): string {
  return model.startsWith(MODEL_PREFIX) ? model.slice(MODEL_PREFIX.length) : model
}

/** The request's `clawmatrix` options, checked; throws a 400 naming the field. */
function clawmatrixOptions (body: Record<string, unknown>): ClawmatrixOptions {
  const options = body.clawmatrix
  if (options == null) return NO_OPTIONS
  if (typeof options !== 'object' || Array.isArray(options)) throw badRequest('clawmatrix: expected an object such as {"fallbacks": ["other-model"]}', 'clawmatrix')
  const fallbacks = (options as Record<string, unknown>).fallbacks
  if (fallbacks == null) return {}
  if (!Array.isArray(fallbacks) || fallbacks.length > MAX_FALLBACKS || !fallbacks.every(f => typeof f === 'string' && f !== '' && f.length <= 256)) {
    throw badRequest(`clawmatrix.fallbacks: expected up to ${MAX_FALLBACKS} model ids`, 'clawmatrix.fallbacks')
  }
  return { fallbacks: fallbacks.map(modelId) }
}

function withoutOptions (body: Record<string, unknown>): Record<string, unknown> {
  const { clawmatrix: _, ...rest } = body
  return rest
}

function localUtilization (load: { running: number, max?: number }): number | undefined {
  return load.max == null ? undefined : Math.min(1, load.running / load.max)
}
