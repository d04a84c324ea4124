import { randomUUID } from 'node:crypto'
import { type ProtocolComponents } from '../wire/components.js'
import { DeadlineError, RemoteError } from '../wire/errors.js'
import { candidatesOf, firstAccepting, type Target } from '../wire/failover.js'
import { type Frame } from '../wire/frame.js'
import { type FrameStream } from '../wire/frame-stream.js'
import { OutboundExchange } from '../wire/outbound.js'
import { checkFrame } from '../wire/request.js'
import { StreamProtocol, withDeadline, type StreamProtocolInit } from './common.js'
import * as c from './constants.js'
import { DeliveredFrame, SendRequestFrame } from './messages.js'
import type { MessageSink } from '../agents/message-sink.js'
import type { Connection, PeerId } from '@libp2p/interface'

export interface SendInit extends StreamProtocolInit {
  nodeId: string
  sink: MessageSink
  /** The name of the node with this peer id, as the cluster view knows it. */
  nodeIdOf?(peerId: string): string | undefined
  deliverTimeoutMs?: number
  maxRememberedMessages?: number
}

export interface SendRequest {
  /** Unique per message; generated when absent. A resent id is not delivered twice. */
  id?: string
  agent: string
  message: string
  /** What the sender calls itself (node or agent id), shown to the receiving agent. */
  from?: string
}

export interface SendOptions {
  signal?: AbortSignal
  /** Bounds the whole send, candidates included. */
  timeoutMs?: number
}

export interface SendReceipt {
  id: string
  peer: PeerId
  /** The receiving node had delivered this id before and did not deliver it again. */
  duplicate: boolean
}

/**
 * `/clawmatrix/send/1.0.0`: a one-way message into a named agent's
 * session (or inbox). The receiver answers `delivered` only once its sink
 * stored the message, or `rejected`: a message is never dropped silently.
 */
export class SendProtocol extends StreamProtocol {
  /** Ids delivered (or being delivered) here, oldest first. */
  private readonly delivered = new Map<string, Promise<void>>()

  constructor (components: ProtocolComponents, private readonly init: SendInit) {
    // The answer comes once the receiver's sink stored the message, so wait at least as long as it may take.
    const acceptTimeoutMs = init.acceptTimeoutMs ?? (init.deliverTimeoutMs ?? c.DELIVER_TIMEOUT_MS) + c.DEADLINE_SLACK_MS
    super(components, c.SEND_PROTOCOL_NAME, c.SEND_PROTOCOL_VERSION, { ...init, acceptTimeoutMs })
  }

  /**
   * Delivers a message to the first candidate that takes it. Throws
   * RefusedError (e.g. code "no-such-agent") or NoCandidateAcceptedError
   * when none does.
   */
  async send (target: Target, request: SendRequest, options: SendOptions = {}): Promise<SendReceipt> {
    const id = request.id ?? randomUUID()
    const frame: Frame = { type: 'send', id, agent: request.agent, message: request.message, from: request.from }
    const { signal, deadline } = withDeadline(options.signal, options.timeoutMs)
    let opened: Awaited<ReturnType<typeof OutboundExchange.open>>
    try {
      opened = await firstAccepting(candidatesOf(target), async peer => {
        const attempt = await OutboundExchange.open(this.outbound, peer, frame, signal)
        if (attempt.answer.type !== 'delivered') {
          await attempt.exchange.close()
          throw new RemoteError('bad-answer', `${this.peerName(peer)} answered a send with "${attempt.answer.type}"`)
        }
        return attempt
      }, signal)
    } catch (err) {
      if (deadline?.expired === true) {
        throw new DeadlineError(`message ${id} to agent "${request.agent}" was not delivered within ${options.timeoutMs} ms`)
      }
      throw err
    } finally {
      deadline?.clear()
    }
    const { exchange, answer } = opened
    await exchange.close()
    const receipt = checkFrame(DeliveredFrame, answer, `send answer from ${this.peerName(exchange.peer)}`)
    return { id, peer: exchange.peer, duplicate: receipt.duplicate === true }
  }

  protected async serve (frames: FrameStream, frame: Frame, connection: Connection): Promise<void> {
    const request = checkFrame(SendRequestFrame, frame, 'send request')
    const answer = async (reply: Frame): Promise<void> => {
      await frames.write(reply)
      await frames.close()
    }
    if (!(await this.init.sink.has(request.agent))) {
      await answer({ type: 'rejected', id: request.id, code: 'no-such-agent', message: `no agent "${request.agent}" on ${this.init.nodeId}` })
      return
    }
    const earlier = this.delivered.get(request.id)
    if (earlier != null) {
      await earlier.then(
        async () => { await answer({ type: 'delivered', id: request.id, duplicate: true }) },
        async () => { await this.deliver(request, connection, answer) }
      )
      return
    }
    await this.deliver(request, connection, answer)
  }

  private async deliver (request: { id: string, agent: string, message: string, from?: string }, connection: Connection, answer: (reply: Frame) => Promise<void>): Promise<void> {
    const peerId = connection.remotePeer.toString()
    const from = { peerId, nodeId: this.init.nodeIdOf?.(peerId), label: request.from }
    const delivering = this.init.sink.deliver(request.agent, request.message, from, {
      id: request.id,
      signal: AbortSignal.timeout(this.init.deliverTimeoutMs ?? c.DELIVER_TIMEOUT_MS)
    })
    this.remember(request.id, delivering)
    try {
      await delivering
    } catch (err: any) {
      this.delivered.delete(request.id)
      this.log.error('delivering %s to %s failed: %e', request.id, request.agent, err)
      await answer({ type: 'rejected', id: request.id, code: 'delivery-failed', message: `${this.init.nodeId} could not deliver to "${request.agent}": ${err.message}` })
      return
    }
    await answer({ type: 'delivered', id: request.id })
  }

  private remember (id: string, delivering: Promise<void>): void {
    delivering.catch(() => {})
    this.delivered.set(id, delivering)
    const max = this.init.maxRememberedMessages ?? c.MAX_REMEMBERED_MESSAGES
    for (const oldest of this.delivered.keys()) {
      if (this.delivered.size <= max) break
      this.delivered.delete(oldest)
    }
  }
}
