import { randomUUID } from 'node:crypto'
import { type ProtocolComponents } from '../wire/components.js'
import { GOODBYE_TIMEOUT_MS } from '../wire/constants.js'
import { DeadlineError, PathLostError } from '../wire/errors.js'
import { candidatesOf, firstAccepting, type Target } from '../wire/failover.js'
import { type Frame } from '../wire/frame.js'
import { type FrameStream } from '../wire/frame-stream.js'
import { watchCaller } from '../wire/inbound.js'
import { KeepAlive } from '../wire/keep-alive.js'
import { OutboundExchange } from '../wire/outbound.js'
import { checkFrame } from '../wire/request.js'
import { withWakefulDeadline } from '../../node/wakeful-deadline.js'
import { utf8Prefix } from '../tools/output.js'
import { type AgentRunner } from '../agents/runner.js'
import { AgentRunError } from '../errors.js'
import type { MessageOrigin } from '../agents/message-sink.js'
import { afterPendingIo, StreamProtocol, withDeadline, type StreamProtocolInit } from './common.js'
import * as c from './constants.js'
import { HandoffRuns, type HandoffOutcome, type HandoffRun } from './handoff-runs.js'
import { HandoffRequestFrame, HandoffResultFrame, type ErrorInfo, type RunStatus } from './messages.js'
import type { Connection, Logger, PeerId } from '@libp2p/interface'

export interface HandoffInit extends StreamProtocolInit {
  /** This node's id, for messages. */
  nodeId: string
  runner: AgentRunner
  maxConcurrentRuns?: number
  /** Timeout of a hand-off that names none. */
  defaultTimeoutMs?: number
  orphanGraceMs?: number
  resultTtlMs?: number
  maxRememberedResults?: number
  maxResultBytes?: number
  /** The name of the node with this peer id, as the cluster view knows it. */
  nodeIdOf?(peerId: string): string | undefined
  /** Policy hook: a reason to refuse this hand-off from `from` ("policy"), or undefined to allow it. */
  authorize?(request: HandoffRequest, from: PeerId): string | undefined | Promise<string | undefined>
}

export interface HandoffRequest {
  /** Unique per task; generated when absent. Reuse it to retry: the same id never runs twice on a node. */
  id?: string
  agent: string
  task: string
  context?: unknown
  /** How long the remote may run the agent; also bounds the wait here. */
  timeoutMs?: number
  /** What the caller calls itself (its agent), shown to the remote agent with this node's name. */
  from?: string
}

export interface HandoffOptions {
  signal?: AbortSignal
  /** Used when the request names no timeoutMs. */
  timeoutMs?: number
  onAccepted?(peer: PeerId, attached: boolean): void
  onProgress?(progress: { message: string, peer: PeerId }): void
}

export interface HandoffResult {
  id: string
  /** The node that ran it. */
  peer: PeerId
  status: RunStatus
  text: string
  error?: ErrorInfo
}

/**
 * `/clawmatrix/handoff/1.0.0`: runs a task on an agent of another node.
 * Serving: accept or refuse (no such agent, busy, policy) before anything
 * starts, keep-alives and progress while the agent runs, then the result.
 * Calling: `handoff()` tries candidates in order until one accepts.
 */
export class HandoffProtocol extends StreamProtocol {
  private readonly runs: HandoffRuns

  constructor (components: ProtocolComponents, private readonly init: HandoffInit) {
    super(components, c.HANDOFF_PROTOCOL_NAME, c.HANDOFF_PROTOCOL_VERSION, init)
    this.runs = new HandoffRuns({
      orphanGraceMs: init.orphanGraceMs ?? c.ORPHAN_GRACE_MS,
      resultTtlMs: init.resultTtlMs ?? c.RESULT_TTL_MS,
      maxRemembered: init.maxRememberedResults ?? c.MAX_REMEMBERED_RESULTS
    })
  }

  override async stop (): Promise<void> {
    await super.stop()
    this.runs.cancelAll('the node is stopping')
  }

  /** Cancels the hand-offs running here for others; their callers get `reason`. */
  cancelRunning (reason: string): void {
    this.runs.cancelAll(reason)
  }

  /** Hand-offs running on this node for others. */
  get running (): number {
    return this.runs.running
  }

  /**
   * Hands a task to the first candidate that accepts it and waits for the
   * result. A refusal or an unreachable candidate moves on to the next;
   * once one accepted, its outcome (or failure) is final. Aborting
   * `signal` cancels the remote run. Throws RefusedError or
   * NoCandidateAcceptedError when no candidate accepts, DeadlineError when
   * the timeout passes, StreamCutError / IdleTimeoutError when the remote
   * goes away mid-run.
   */
  async handoff (target: Target, request: HandoffRequest, options: HandoffOptions = {}): Promise<HandoffResult> {
    const id = request.id ?? randomUUID()
    const timeoutMs = request.timeoutMs ?? options.timeoutMs
    const frame: Frame = { type: 'handoff', id, agent: request.agent, task: request.task, context: request.context, timeoutMs, ...(request.from == null ? {} : { from: request.from }) }
    const { signal, deadline } = withDeadline(options.signal, timeoutMs == null ? undefined : timeoutMs + c.DEADLINE_SLACK_MS)
    let peer: PeerId | undefined
    try {
      const { exchange, answer } = await firstAccepting(candidatesOf(target), async (candidate, last) => OutboundExchange.open(this.outbound, candidate, frame, signal, this.acceptTimeoutFor(last)), signal)
      peer = exchange.peer
      options.onAccepted?.(exchange.peer, answer.attached === true)
      const follow = async (following: OutboundExchange): Promise<Frame> => following.finish(['result'], signal, progress => {
        if (progress.type === 'progress') options.onProgress?.({ message: String(progress.message), peer: following.peer })
      })
      let final: Frame
      try {
        final = await follow(exchange)
      } catch (err) {
        // The relay under it died while the run goes on there: the same id attaches to that run over another path.
        if (!(err instanceof PathLostError) || signal.aborted) throw err
        const again = await OutboundExchange.open(this.outbound, exchange.peer, frame, signal, this.acceptTimeoutFor(true)).catch(() => { throw err })
        this.log('hand-off %s: %s; attached again over another path', id, err.message)
        final = await follow(again.exchange)
      }
      const result = checkFrame(HandoffResultFrame, final, `handoff result from ${this.peerName(exchange.peer)}`)
      return { id, peer: exchange.peer, status: result.status, text: result.text, error: result.error }
    } catch (err) {
      if (deadline?.expired === true) {
        throw new DeadlineError(`hand-off ${id} to agent "${request.agent}" had no result${peer == null ? '' : ` from ${this.peerName(peer)}`} within ${timeoutMs} ms`)
      }
      throw err
    } finally {
      deadline?.clear()
    }
  }

  protected async serve (frames: FrameStream, frame: Frame, connection: Connection, _reuse: boolean, log: Logger): Promise<void> {
    const request = checkFrame(HandoffRequestFrame, frame, 'handoff request')
    const { nodeId, runner } = this.init
    const reject = async (code: string, message: string): Promise<void> => {
      log('refused hand-off %s from %p: %s', request.id, connection.remotePeer, message)
      await frames.write({ type: 'rejected', id: request.id, code, message })
      await frames.close()
    }

    if (this.runs.get(request.id) == null) {
      if (!(await runner.has(request.agent))) {
        await reject('no-such-agent', `no agent "${request.agent}" on ${nodeId}`)
        return
      }
      const policy = await this.init.authorize?.(request, connection.remotePeer)
      if (policy != null) {
        await reject('policy', policy)
        return
      }
    }
    // Looked up again: a request with the same id may have started it while we awaited.
    let run = this.runs.get(request.id)
    const attached = run != null
    // `accepted` means received, validated and authorized: the agent starts once that answer is on its way.
    // Starting an agent is the host's work and can hold the thread (an OpenClaw gateway admits a run with
    // synchronous writes to its session store, which wait for its own store worker): the caller, waiting
    // ACCEPT_TIMEOUT_MS for this answer, must not wait for that too.
    const answered = Promise.withResolvers<void>()
    if (run == null) {
      const limit = this.init.maxConcurrentRuns ?? c.MAX_CONCURRENT_RUNS
      if (this.runs.running >= limit) {
        await reject('busy', `${nodeId} is already running ${this.runs.running} hand-offs (its limit)`)
        return
      }
      const peerId = connection.remotePeer.toString()
      const from = { peerId, nodeId: this.init.nodeIdOf?.(peerId), label: request.from }
      // registered now, so a retry with this id attaches instead of starting a second run
      run = this.runs.start(request.id, request.agent, request.task, async (signal, onProgress) => {
        await answered.promise
        return this.execute(request, signal, onProgress, from)
      })
    } else if (run.agent !== request.agent || run.task !== request.task) {
      await reject('id-conflict', `id ${request.id} is already used on ${nodeId} by a different hand-off`)
      return
    }
    try {
      await frames.write({ type: 'accepted', id: request.id, ...(attached ? { attached: true } : {}) })
    } catch (err) {
      // nobody was told it started: it does not
      if (!attached) this.runs.cancel(run, 'the caller left before it was accepted')
      throw err
    } finally {
      afterPendingIo(answered.resolve)
    }
    await this.follow(frames, run, connection, log)
  }

  /** Streams one run's progress and result to one caller, until it ends or the caller leaves. */
  private async follow (frames: FrameStream, run: HandoffRun, connection: Connection, log: Logger): Promise<void> {
    const keepAlive = new KeepAlive(frames, this.settings.keepAliveIntervalMs)
    const detach = this.runs.attach(run, progressWriter(frames))
    const stopWatching = new AbortController()
    keepAlive.start()
    try {
      const callerEvent = watchCaller(frames, stopWatching.signal).then(event => {
        if (event === 'cancel') this.runs.cancel(run, 'cancelled by the caller')
        return event
      })
      const first = await Promise.race([run.done, callerEvent])
      if (first === 'gone') {
        log('caller %p left hand-off %s', connection.remotePeer, run.id)
        return
      }
      const outcome = await run.done
      keepAlive.stop()
      await withWakefulDeadline(this.settings.idleTimeoutMs, async signal => { await frames.write({ type: 'result', id: run.id, ...outcome }, { signal }) })
      await frames.close()
    } finally {
      stopWatching.abort()
      keepAlive.stop()
      detach()
    }
  }

  private async execute (request: { id: string, agent: string, task: string, context?: unknown, timeoutMs?: number }, signal: AbortSignal, onProgress: (message: string) => void, from?: MessageOrigin): Promise<HandoffOutcome> {
    const timeoutMs = Math.min(request.timeoutMs ?? this.init.defaultTimeoutMs ?? c.HANDOFF_TIMEOUT_MS, c.MAX_TIMEOUT_MS)
    const deadline = AbortSignal.timeout(timeoutMs)
    const runSignal = AbortSignal.any([signal, deadline])
    this.log('running hand-off %s on agent %s', request.id, request.agent)
    try {
      runSignal.throwIfAborted()
      const { text } = await this.init.runner.run(request.agent, request.task, request.context, { signal: runSignal, onProgress, id: request.id, from })
      runSignal.throwIfAborted()
      return { status: 'ok', text: fitText(text, this.init.maxResultBytes ?? c.MAX_RESULT_BYTES) }
    } catch (err: any) {
      if (deadline.aborted) {
        return { status: 'timeout', text: '', error: { code: 'timeout', message: `agent "${request.agent}" did not finish within ${timeoutMs} ms on ${this.init.nodeId} and was stopped` } }
      }
      if (signal.aborted) {
        return { status: 'cancelled', text: '', error: { code: 'cancelled', message: `hand-off ${request.id} was cancelled (${signal.reason?.message ?? 'aborted'})` } }
      }
      return { status: 'error', text: '', error: { code: err instanceof AgentRunError ? err.code : 'agent-failed', message: err.message } }
    }
  }
}

/**
 * Progress goes out as it comes, but never queues: while one progress frame
 * waits for the stream to drain, newer messages replace each other and only
 * the latest follows.
 */
function progressWriter (frames: FrameStream): (message: string) => void {
  let latest: string | undefined
  let writing = false
  return message => {
    latest = message
    if (writing) return
    writing = true
    void (async () => {
      while (latest != null) {
        const next = latest
        latest = undefined
        await withWakefulDeadline(GOODBYE_TIMEOUT_MS * 5, async signal => { await frames.write({ type: 'progress', message: next }, { signal }) }).catch(() => {})
      }
      writing = false
    })()
  }
}

/** Cuts an answer so its JSON encoding fits `maxBytes`, marking the cut. */
function fitText (text: string, maxBytes: number): string {
  if (Buffer.byteLength(JSON.stringify(text)) <= maxBytes) return text
  const marker = `\n[answer truncated by clawmatrix: ${Buffer.byteLength(text)} bytes in all]`
  let budget = maxBytes - 2 * marker.length
  let cut = utf8Prefix(text, budget) + marker
  // Escapes can make JSON up to six times the text: shrink until it fits.
  while (Buffer.byteLength(JSON.stringify(cut)) > maxBytes && budget > 0) {
    budget = Math.floor(budget / 2)
    cut = utf8Prefix(text, budget) + marker
  }
  return cut
}
