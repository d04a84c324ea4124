import { randomUUID } from 'node:crypto'
import { type ProtocolComponents } from '../wire/components.js'
import { DeadlineError } from '../wire/errors.js'
import { candidatesOf, firstAccepting, type Target } from '../wire/failover.js'
import { type Frame } from '../wire/frame.js'
import { type FrameStream } from '../wire/frame-stream.js'
import { watchCaller } from '../wire/inbound.js'
import { KeepAlive } from '../wire/keep-alive.js'
import { OutboundExchange } from '../wire/outbound.js'
import { checkFrame } from '../wire/request.js'
import { withWakefulDeadline } from '../../node/wakeful-deadline.js'
import { StreamProtocol, withDeadline, type StreamProtocolInit } from './common.js'
import * as c from './constants.js'
import { ToolRequestFrame, ToolResultFrame, type ErrorInfo, type RunStatus } from './messages.js'
import type { Truncation } from '../tools/output.js'
import type { ToolExecutor } from '../tools/executor.js'
import type { Connection, Logger, PeerId } from '@libp2p/interface'

export interface ToolProtocolInit extends StreamProtocolInit {
  nodeId: string
  /** Runs calls under this node's toolProxy policy. */
  executor: ToolExecutor
  maxConcurrentCalls?: number
}

export interface ToolCallRequest {
  id?: string
  tool: string
  params: unknown
  /** How long the remote may run the tool (exec defaults to 30 minutes there). */
  timeoutMs?: number
}

export interface ToolCallOptions {
  signal?: AbortSignal
  /** Used when the request names no timeoutMs. */
  timeoutMs?: number
  /** Output as it arrives (exec: stdout/stderr; read/write/edit: content). */
  onOutput?(output: { channel: string, text: string, peer: PeerId }): void
}

export interface ToolCallResult {
  id: string
  peer: PeerId
  status: RunStatus
  /** Everything the tool sent, per channel (cut at the remote's maxOutputBytes, marker included). */
  output: Record<string, string>
  details?: Record<string, unknown>
  error?: ErrorInfo
  truncated?: Truncation
}

/**
 * `/clawmatrix/tool/1.0.0`: runs a tool (exec, read, write, edit, or a
 * registered one) on another node. The executing node enforces its
 * toolProxy policy and output cap; a cancel, a lost caller or the timeout
 * stops the tool and kills its process tree.
 */
export class ToolProtocol extends StreamProtocol {
  private readonly running = new Set<AbortController>()

  constructor (components: ProtocolComponents, private readonly init: ToolProtocolInit) {
    super(components, c.TOOL_PROTOCOL_NAME, c.TOOL_PROTOCOL_VERSION, init)
  }

  override async stop (): Promise<void> {
    await super.stop()
    this.cancelRunning('the node is stopping')
  }

  /** Aborts the tool calls running here for others (their processes are killed). */
  cancelRunning (reason: string): void {
    for (const call of this.running) call.abort(new Error(reason))
  }

  /**
   * Runs a tool on the first candidate that accepts the call. Throws
   * RefusedError (tool-disabled, denied, unknown-tool, bad-params, busy)
   * or NoCandidateAcceptedError when none does, DeadlineError after the
   * timeout, StreamCutError / IdleTimeoutError if the remote goes away.
   */
  async call (target: Target, request: ToolCallRequest, options: ToolCallOptions = {}): Promise<ToolCallResult> {
    const id = request.id ?? randomUUID()
    const timeoutMs = request.timeoutMs ?? options.timeoutMs
    const frame: Frame = { type: 'tool', id, tool: request.tool, params: request.params, timeoutMs }
    const { signal, deadline } = withDeadline(options.signal, timeoutMs == null ? undefined : timeoutMs + c.DEADLINE_SLACK_MS)
    const output: Record<string, string> = {}
    try {
      const { exchange } = await firstAccepting(candidatesOf(target), async peer => OutboundExchange.open(this.outbound, peer, frame, signal), signal)
      const final = await exchange.finish(['result'], signal, received => {
        if (received.type !== 'output' || typeof received.channel !== 'string' || typeof received.text !== 'string') return
        output[received.channel] = (output[received.channel] ?? '') + received.text
        options.onOutput?.({ channel: received.channel, text: received.text, peer: exchange.peer })
      })
      const result = checkFrame(ToolResultFrame, final, `tool result from ${this.peerName(exchange.peer)}`)
      return { id, peer: exchange.peer, status: result.status, output, details: result.details, error: result.error, truncated: result.truncated }
    } catch (err) {
      if (deadline?.expired === true) {
        throw new DeadlineError(`tool call ${id} (${request.tool}) had no result within ${timeoutMs} ms`)
      }
      throw err
    } finally {
      deadline?.clear()
    }
  }

  protected async serve (frames: FrameStream, frame: Frame, connection: Connection, _reuse: boolean, log: Logger): Promise<void> {
    const request = checkFrame(ToolRequestFrame, frame, 'tool request')
    const call = { tool: request.tool, params: request.params, timeoutMs: request.timeoutMs }
    const refusal = this.init.executor.refusal(call) ?? this.busy()
    if (refusal != null) {
      log('refused %s call %s from %p: %s', request.tool, request.id, connection.remotePeer, refusal.message)
      await frames.write({ type: 'rejected', id: request.id, ...refusal })
      await frames.close()
      return
    }
    const controller = new AbortController()
    this.running.add(controller)
    const keepAlive = new KeepAlive(frames, this.settings.keepAliveIntervalMs)
    const stopWatching = new AbortController()
    try {
      await frames.write({ type: 'accepted', id: request.id })
      keepAlive.start()
      // A tool call is not resumable: cancel and a lost caller both stop it at once.
      void watchCaller(frames, stopWatching.signal).then(event => {
        if (event != null) controller.abort(new Error(event === 'cancel' ? 'cancelled by the caller' : 'the caller went away'))
      })
      log('running %s call %s for %p', request.tool, request.id, connection.remotePeer)
      const outcome = await this.init.executor.execute(call, {
        signal: controller.signal,
        output: async (channel, text) => { await frames.write({ type: 'output', channel, text }, { signal: controller.signal }) }
      })
      keepAlive.stop()
      if (controller.signal.aborted && frames.stream.writeStatus !== 'writable') return
      await withWakefulDeadline(this.settings.idleTimeoutMs, async signal => { await frames.write({ type: 'result', id: request.id, ...outcome }, { signal }) })
      await frames.close()
    } finally {
      stopWatching.abort()
      keepAlive.stop()
      this.running.delete(controller)
    }
  }

  private busy (): { code: string, message: string } | undefined {
    const limit = this.init.maxConcurrentCalls ?? c.MAX_CONCURRENT_TOOL_CALLS
    if (this.running.size < limit) return undefined
    return { code: 'busy', message: `${this.init.nodeId} is already running ${this.running.size} tool calls (its limit)` }
  }
}
