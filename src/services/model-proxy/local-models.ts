/**
 * The models this node hosts: one upstream adapter per configured model,
 * created at start. Both the mesh protocol (requests from other nodes) and
 * the proxy (requests from this node's own clients) call upstreams here, so
 * a local request takes exactly the path a remote one does, minus the mesh.
 * Upstream URLs and keys stay in this object: nothing of it is announced.
 */
import { createUpstream, resolveUpstreamTarget } from '../models/resolve.js'
import { UpstreamError } from '../models/errors.js'
import { UpstreamConnections, type UpstreamConnectionsInit } from '../models/upstream-http.js'
import { MAX_CONCURRENT_REQUESTS } from './constants.js'
import { DEFAULT_QUEUE_WAIT_MS } from '../../config/schema.js'
import type { ModelConfig } from '../../config/schema.js'
import { askForUsage, UsageReader } from './usage.js'
import { mark } from '../wire/trace.js'
import type { ModelRequest, ModelResponse, ModelUpstream, UpstreamInit, UpstreamTarget } from '../models/upstream.js'
import type { RejectCode } from './messages.js'
import type { ComponentLogger, Logger, Startable } from '@libp2p/interface'

/**
 * Where a model's upstream is and which key it takes. The default reads the
 * model's config entry and the key from the environment; the OpenClaw
 * plugin can take both from OpenClaw's own provider config instead.
 */
export type ResolveModelTarget = (model: ModelConfig) => UpstreamTarget | Promise<UpstreamTarget>

export interface LocalModelsInit {
  models: ModelConfig[]
  resolveTarget?: ResolveModelTarget
  /** Timeouts of the upstream adapters, and how long a kept connection to an upstream may idle. */
  upstream?: UpstreamOptions
  /** Upstream requests at once, for this node's clients and other nodes together. */
  maxConcurrentRequests?: number
  /** Where a model that cannot be served is reported at start (the node's info log). */
  warn?(message: string): void
  /** The node's logger (../node/logging.ts `nodeLogger`), so every line says which node it is. */
  logger: ComponentLogger
}

/**
 * What an embedder may set of the node's upstream side (`modelProxy.upstream`):
 * the adapters' timeouts, and how long the node's kept connections may idle.
 * The node supplies the adapters' logger and connections.
 */
export type UpstreamOptions = Omit<UpstreamInit, 'logger' | 'connections'> & UpstreamConnectionsInit

/** How busy a model is on this node: requests running, and its `maxConcurrent` when it has one. */
export interface ModelLoad {
  running: number
  max?: number
  /** Requests waiting for a slot, and how many may (its `maxQueued`), when it queues. */
  queued?: number
  maxQueued?: number
}

export interface LocalRequestOptions {
  /**
   * At the model's maxConcurrent, wait in its queue (when it has room) for a
   * slot instead of being refused: asked once every host refused as busy.
   */
  wait?: boolean
}

/** A request waiting for a slot: `admit` hands it one, `cancel` sends it away. */
interface Waiter {
  admit(): void
  cancel(err: Error): void
}

/** Why a model is not served here; `code` goes over the wire in a `rejected` frame. */
export interface Refusal {
  code: RejectCode
  message: string
}

export class LocalModels implements Startable {
  private readonly log: Logger
  private readonly upstreams = new Map<string, ModelUpstream>()
  /** Configured models that could not be set up, with the reason (never a key). */
  private readonly unavailable = new Map<string, string>()
  private readonly controllers = new Set<AbortController>()
  /** Requests running per model, for `maxConcurrent`. */
  private readonly runningByModel = new Map<string, number>()
  private readonly limits: Map<string, number>
  /** maxQueued and queueWaitMs by model, for models that queue. */
  private readonly queueLimits: Map<string, { size: number, waitMs: number }>
  private readonly queues = new Map<string, Waiter[]>()
  private started = false
  private inFlight = 0
  /** This node's kept connections to its upstreams, from start to stop. */
  private connections?: UpstreamConnections

  constructor (private readonly init: LocalModelsInit) {
    this.limits = new Map(init.models.flatMap(model => model.maxConcurrent == null ? [] : [[model.id, model.maxConcurrent]]))
    this.queueLimits = new Map(init.models.flatMap(model => model.maxConcurrent == null || (model.maxQueued ?? 0) === 0
      ? []
      : [[model.id, { size: model.maxQueued!, waitMs: model.queueWaitMs ?? DEFAULT_QUEUE_WAIT_MS }]]))
    this.log = init.logger.forComponent('clawmatrix:model-proxy:local')
  }

  async start (): Promise<void> {
    const { idleSocketMs, ...adapters } = this.init.upstream ?? {}
    this.connections = new UpstreamConnections({ idleSocketMs })
    const resolve = this.init.resolveTarget ?? (async (model: ModelConfig) => resolveUpstreamTarget(model))
    for (const model of this.init.models) {
      try {
        this.upstreams.set(model.id, createUpstream(await resolve(model), { logger: this.init.logger, ...adapters, connections: this.connections }))
      } catch (err: any) {
        // The node still starts: its other models and every other service work, and
        // callers are told why this one is refused (and fail over to another host).
        this.unavailable.set(model.id, err.message)
        this.init.warn?.(`model "${model.id}" cannot be served: ${err.message}`)
      }
    }
    this.started = true
  }

  /** Cancels the upstream requests still running. */
  async stop (): Promise<void> {
    for (const controller of this.controllers) controller.abort(new Error('the node is stopping'))
    this.controllers.clear()
    for (const queue of this.queues.values()) for (const waiter of [...queue]) waiter.cancel(new Error('the node is stopping'))
    this.queues.clear()
    this.upstreams.clear()
    this.unavailable.clear()
    // The requests just aborted release their sockets; the kept ones close here, not at their idle timeout.
    this.connections?.destroy()
    this.connections = undefined
    this.started = false
  }

  isStarted (): boolean {
    return this.started
  }

  /** Model ids this node serves. */
  get ids (): string[] {
    return [...this.upstreams.keys()]
  }

  /** Upstream requests running now. */
  get running (): number {
    return this.inFlight
  }

  /** The model's requests running here and its limit, and its queue when it has one. */
  load (model: string): ModelLoad {
    const load: ModelLoad = { running: this.runningByModel.get(model) ?? 0, max: this.limits.get(model) }
    const queue = this.queueLimits.get(model)
    if (queue != null) Object.assign(load, { queued: this.queues.get(model)?.length ?? 0, maxQueued: queue.size })
    return load
  }

  /**
   * Why a request for `model` would be refused before reaching an upstream,
   * or undefined. With `wait`, a model at its maxConcurrent whose queue has
   * room is not refused: request() queues it.
   */
  refusal (model: string, options: LocalRequestOptions = {}): Refusal | undefined {
    const reason = this.unavailable.get(model)
    if (reason != null) return { code: 'model-unavailable', message: reason }
    if (!this.upstreams.has(model)) {
      return { code: 'no-such-model', message: `model "${model}" is not hosted here (this node serves ${this.ids.length === 0 ? 'no models' : this.ids.join(', ')})` }
    }
    const limit = this.init.maxConcurrentRequests ?? MAX_CONCURRENT_REQUESTS
    if (this.inFlight >= limit) return { code: 'busy', message: `already running ${this.inFlight} model requests (the limit)` }
    const { running, max } = this.load(model)
    if (max == null || running < max) return undefined
    const queue = this.queueLimits.get(model)
    const queued = this.queues.get(model)?.length ?? 0
    if (options.wait === true && queue != null && queued < queue.size) return undefined
    const why = queue == null ? 'its maxConcurrent' : `its maxConcurrent, and ${queued} of ${queue.size} queued`
    return { code: 'busy', message: `already running ${running} requests for model "${model}" (${why})` }
  }

  /**
   * Sends a request to the model's upstream. Resolves once the upstream
   * started a successful answer; rejects with UpstreamError otherwise (see
   * ModelUpstream). The request counts as running until its body is read to
   * its end, left, or the signal aborts. The upstream is asked for usage on
   * streams; `response.usage()` has it once the body ended.
   */
  async request (model: string, request: ModelRequest, options: LocalRequestOptions = {}): Promise<ModelResponse> {
    const refusal = this.refusal(model, options)
    if (refusal != null) {
      throw UpstreamError.of(refusal.code === 'busy' ? 503 : 404, refusal.code === 'busy' ? 'server_error' : 'invalid_request_error', refusal.message, { code: refusal.code })
    }
    const upstream = this.upstreams.get(model)!
    const max = this.limits.get(model)
    if (max != null && (this.runningByModel.get(model) ?? 0) >= max) await this.queued(model, request.signal)
    else this.take(model)
    // Our own controller, which stop() aborts, and the caller's abort forwarded to it: no AbortSignal.any per request.
    const controller = new AbortController()
    const callerAborted = (): void => { controller.abort(request.signal?.reason) }
    request.signal?.addEventListener('abort', callerAborted)
    if (request.signal?.aborted === true) callerAborted()
    this.controllers.add(controller)
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      this.controllers.delete(controller)
      request.signal?.removeEventListener('abort', callerAborted)
      controller.signal.removeEventListener('abort', release)
      this.give(model)
    }
    controller.signal.addEventListener('abort', release)
    this.log('%s %s (%s)', model, request.route, request.body.stream === true ? 'stream' : 'whole')
    try {
      const asked = askForUsage(request.route, request.body)
      mark('upstream request')
      const response = await upstream.request({ route: request.route, body: asked.body, signal: controller.signal })
      const usage = new UsageReader(response.contentType.startsWith('text/event-stream'), asked.strip)
      return { ...response, body: served(response.body, usage, release), usage: () => usage.usage }
    } catch (err) {
      release()
      throw err
    }
  }

  /** Counts a request as running. */
  private take (model: string): void {
    this.inFlight++
    this.runningByModel.set(model, (this.runningByModel.get(model) ?? 0) + 1)
  }

  /** A request ended: its slot goes to the first one queued for the model, or is freed. */
  private give (model: string): void {
    const next = this.queues.get(model)?.shift()
    if (next != null) {
      next.admit()
      return
    }
    this.queues.delete(model)
    this.inFlight--
    const left = (this.runningByModel.get(model) ?? 1) - 1
    if (left <= 0) this.runningByModel.delete(model)
    else this.runningByModel.set(model, left)
  }

  /**
   * Waits in the model's queue until a request ends and hands over its slot.
   * Throws busy (as request() refuses) after the model's queueWaitMs, and the
   * signal's reason when the caller leaves; either way it leaves the queue.
   */
  private async queued (model: string, signal?: AbortSignal): Promise<void> {
    const { waitMs } = this.queueLimits.get(model)!
    const queue = this.queues.get(model) ?? []
    this.queues.set(model, queue)
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const leave = (err: unknown): void => {
      const at = queue.indexOf(waiter)
      if (at === -1) return
      queue.splice(at, 1)
      reject(err)
    }
    const waiter: Waiter = { admit: resolve, cancel: leave }
    queue.push(waiter)
    const timer = setTimeout(() => {
      leave(UpstreamError.of(503, 'server_error', `waited ${waitMs} ms in the queue of model "${model}" without a slot (its maxConcurrent is ${this.limits.get(model)})`, { code: 'busy' }))
    }, waitMs)
    const onAbort = (): void => { leave(signal!.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      signal?.throwIfAborted()
      await promise
    } catch (err) {
      leave(err)
      throw err
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
  }
}

/** Whether `err` is a refusal because the model (or the node) is at its limit. */
export function isBusy (err: unknown): boolean {
  return err instanceof UpstreamError && err.body.error.code === 'busy'
}

/**
 * The upstream's body on its way to the caller: usage read as it passes,
 * the request's slot freed when the body was read to its end, left or failed.
 */
async function * served (body: AsyncIterable<Uint8Array>, usage: UsageReader, release: () => void): AsyncGenerator<Uint8Array> {
  try {
    for await (const bytes of body) {
      const passed = usage.pass(bytes)
      if (passed != null) yield passed
    }
  } finally {
    release()
  }
}
