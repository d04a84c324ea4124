import { type ProtocolComponents } from '../services/wire/components.js'
import { GOODBYE_TIMEOUT_MS } from '../services/wire/constants.js'
import { MalformedFrameError } from '../services/wire/errors.js'
import { type Frame } from '../services/wire/frame.js'
import { type FrameStream } from '../services/wire/frame-stream.js'
import { watchCaller } from '../services/wire/inbound.js'
import { KeepAlive } from '../services/wire/keep-alive.js'
import { OutboundExchange } from '../services/wire/outbound.js'
import { checkFrame } from '../services/wire/request.js'
import { withWakefulDeadline } from '../node/wakeful-deadline.js'
import { afterPendingIo, StreamProtocol, type StreamProtocolInit } from '../services/protocols/common.js'
import { TASK_PROTOCOL_NAME, TASK_PROTOCOL_VERSION } from './constants.js'
import { type TaskExecutor } from './executor.js'
import { TaskRefusedError } from './errors.js'
import { CancelFrame, GetFrame, MessageFrame, SubmitFrame, TaskFrame, TaskProgressFrame, TaskStateFrame } from './messages.js'
import { isActive, type TaskEvent, type TaskRecord } from './task.js'
import type { Static } from 'typebox'
import type { Connection, Logger, PeerId } from '@libp2p/interface'

export type TaskSnapshot = Static<typeof TaskFrame>['task']

export interface TaskProtocolInit extends StreamProtocolInit {
  nodeId: string
  executor: TaskExecutor
  /**
   * The name of the node behind an authenticated peer id (ClawmatrixNode.callerName: the certified
   * name in a managed cluster). A task's owner is recorded under it, never under the request's
   * self-declared `from`; without it, or for a peer it does not know, the peer id.
   */
  callerName?(peerId: string): string | undefined
}

/** What a follower hears: progress, state changes, and the snapshot that ends the follow. */
export interface FollowHandlers {
  onProgress?(message: string, at: number): void
  onState?(task: TaskSnapshot): void
}

/**
 * `/clawmatrix/task/1.0.0` (docs/protocol.md, section 5): submit, read,
 * answer and cancel tasks on another node, and follow one while it works.
 * One request per stream. Every request is answered with the task as the
 * executor has it (`task`) or `rejected`; a request with `follow` on a task
 * still working keeps the stream open for `task-progress` and `task-state`
 * frames until a final `task` frame once the task stopped working.
 */
export class TaskProtocol extends StreamProtocol {
  constructor (components: ProtocolComponents, private readonly init: TaskProtocolInit) {
    super(components, TASK_PROTOCOL_NAME, TASK_PROTOCOL_VERSION, init)
  }

  /**
   * Sends one request to `peer`; resolves with its first answer, throws RefusedError on `rejected`.
   * `last`: no other candidate follows (a task lives on one executor, so only a submit has others).
   */
  async open (peer: PeerId, request: Frame, signal: AbortSignal, last = true): Promise<{ exchange: OutboundExchange, first: Static<typeof TaskFrame> }> {
    const { exchange, answer } = await OutboundExchange.open(this.outbound, peer, request, signal, this.acceptTimeoutFor(last))
    try {
      return { exchange, first: checkFrame(TaskFrame, answer, `task answer from ${peer}`) }
    } catch (err) {
      await exchange.close().catch(() => {})
      throw err
    }
  }

  /** Reads a followed exchange to its final `task` frame. */
  async follow (exchange: OutboundExchange, handlers: FollowHandlers, signal: AbortSignal): Promise<TaskSnapshot> {
    const final = await exchange.finish(['task'], signal, frame => {
      if (frame.type === 'task-progress') {
        const progress = checkFrame(TaskProgressFrame, frame, `task progress from ${exchange.peer}`)
        handlers.onProgress?.(progress.message, progress.at)
      } else if (frame.type === 'task-state') {
        handlers.onState?.(checkFrame(TaskStateFrame, frame, `task state from ${exchange.peer}`).task)
      }
    })
    return checkFrame(TaskFrame, final, `task from ${exchange.peer}`).task
  }

  protected async serve (frames: FrameStream, frame: Frame, connection: Connection, _reuse: boolean, log: Logger): Promise<void> {
    const { executor } = this.init
    const peerId = connection.remotePeer.toString()
    // A task's agent starts once the first answer is on its way (see the hand-off protocol's accept)
    const answered = Promise.withResolvers<void>()
    const onAnswered = (): void => { afterPendingIo(answered.resolve) }
    try {
      switch (frame.type) {
        case 'task-submit': {
          const request = checkFrame(SubmitFrame, frame, 'task-submit request')
          // `from` is what the caller calls itself: a member could claim any name there.
          const owner = { nodeId: this.init.callerName?.(peerId) ?? peerId, peerId, session: request.session }
          const { record, attached } = await executor.submit(request, owner, answered.promise)
          log('task %s from %p: %s', record.id, connection.remotePeer, attached ? 'attached' : 'accepted')
          await this.answer(frames, record, request.follow === true, attached, onAnswered)
          return
        }
        case 'task-get': {
          const request = checkFrame(GetFrame, frame, 'task-get request')
          await this.answer(frames, executor.get(request.id, peerId), request.follow === true)
          return
        }
        case 'task-message': {
          const request = checkFrame(MessageFrame, frame, 'task-message request')
          await this.answer(frames, await executor.answer(request.id, request.message, peerId, answered.promise), request.follow === true, false, onAnswered)
          return
        }
        case 'task-cancel': {
          const request = checkFrame(CancelFrame, frame, 'task-cancel request')
          const { record, stopped } = await executor.cancel(request.id, peerId)
          await frames.write({ type: 'task', task: snapshot(record), stopped })
          await frames.close()
          return
        }
        default:
          throw new MalformedFrameError(`expected a task-submit, task-get, task-message or task-cancel request, got "${frame.type}"`, 'bad-request')
      }
    } catch (err) {
      if (!(err instanceof TaskRefusedError)) throw err
      log('refused %s from %p: %s', frame.type, connection.remotePeer, err.message)
      await frames.write({ type: 'rejected', id: typeof frame.id === 'string' ? frame.id : undefined, code: err.code, message: err.message })
      await frames.close()
    } finally {
      onAnswered()
    }
  }

  /** Answers with the task; when asked to follow a working task, streams its events until it stops working. */
  private async answer (frames: FrameStream, record: TaskRecord, follow: boolean, attached = false, onAnswered = (): void => {}): Promise<void> {
    const extra = attached ? { attached: true } : {}
    if (!follow || !isActive(record.state)) {
      await frames.write({ type: 'task', task: snapshot(record), ...extra }).finally(onAnswered)
      await frames.close()
      return
    }
    const ended = Promise.withResolvers<TaskRecord>()
    const writer = eventWriter(frames, ended.resolve)
    // Following before the first answer is written, so no event falls between.
    const unfollow = this.init.executor.follow(record.id, writer)
    const keepAlive = new KeepAlive(frames, this.settings.keepAliveIntervalMs)
    const stopWatching = new AbortController()
    try {
      await frames.write({ type: 'task', task: snapshot(record), following: true, ...extra }).finally(onAnswered)
      if (!isActive(record.state)) ended.resolve(record)
      keepAlive.start()
      // A follower that leaves only stops following: the task goes on.
      const left = watchCaller(frames, stopWatching.signal).then(() => undefined)
      const last = await Promise.race([ended.promise, left])
      if (last == null) return
      keepAlive.stop()
      await writer.drained()
      await withWakefulDeadline(this.settings.idleTimeoutMs, async signal => { await frames.write({ type: 'task', task: snapshot(last) }, { signal }) })
      await frames.close()
    } finally {
      stopWatching.abort()
      keepAlive.stop()
      unfollow()
    }
  }
}

/**
 * Writes a follower's events in order without holding up the task: progress
 * and states queue here, and the end of the follow is signalled through
 * `onEnd` once the task stopped working.
 */
function eventWriter (frames: FrameStream, onEnd: (record: TaskRecord) => void): ((event: TaskEvent) => void) & { drained(): Promise<void> } {
  let queue = Promise.resolve()
  let ended = false
  const write = (frame: Frame): void => {
    queue = queue.then(async () => { await withWakefulDeadline(GOODBYE_TIMEOUT_MS * 5, async signal => { await frames.write(frame, { signal }) }) }).catch(() => {})
  }
  const listener = (event: TaskEvent): void => {
    if (ended) return
    if (event.type === 'progress') {
      write({ type: 'task-progress', id: event.id, message: event.message, at: event.at })
    } else if (isActive(event.task.state)) {
      write({ type: 'task-state', task: snapshot(event.task) })
    } else {
      ended = true
      onEnd(event.task)
    }
  }
  return Object.assign(listener, { drained: async () => { await queue } })
}

/** A record as it goes on the wire: what the caller may see, nothing about the owner. */
export function snapshot (record: TaskRecord): TaskSnapshot {
  const { id, contextId, state, agent, task, turns, progress, result, question, error, note, createdAt, updatedAt } = record
  return { id, contextId, state, agent, task, turns, progress, result, question, error, note, createdAt, updatedAt }
}
