import { InvalidDataLengthError, lpStream } from '@libp2p/utils'
import { isName } from '../../config/schema.js'
import { PROTOCOL_PREFIX } from '../wire/constants.js'
import { protocolId } from '../wire/protocol-id.js'
import * as c from './constants.js'
import { WakefulDeadline } from '../../node/wakeful-deadline.js'
import type { ClusterNode } from '../cluster/cluster-view.js'
import type { ProtocolComponents } from '../wire/components.js'
import type { AbortOptions, Connection, Logger, PeerId, Startable, Stream } from '@libp2p/interface'
import { ViewFetchError } from '../errors.js'

/** What a member answers on the view protocol: who it is and every node it knows. */
export interface ClusterViewSnapshot {
  nodeId: string
  peerId: string
  version: string
  nodes: ClusterNode[]
}

export interface ViewProtocolInit {
  /** The view to serve. Without it the protocol can only fetch (an inspector is not a member). */
  snapshot?: () => ClusterViewSnapshot
  protocolPrefix?: string
  timeoutMs?: number
  maxViewBytes?: number
  maxInboundStreams?: number
  maxOutboundStreams?: number
  runOnLimitedConnection?: boolean
}

/**
 * `/clawmatrix/view/1.0.0`: one request, one answer. The dialer writes a
 * length-prefixed JSON object (empty today, room for options), the member
 * answers with its cluster view as one length-prefixed JSON object and
 * closes. What `clawmatrix inspect` shows, as identify shows a peer's protocols.
 */
export class ViewProtocol implements Startable {
  readonly protocol: string
  private readonly log: Logger
  private readonly snapshot?: () => ClusterViewSnapshot
  private readonly timeoutMs: number
  private readonly maxViewBytes: number
  private readonly maxInboundStreams: number
  private readonly maxOutboundStreams: number
  private readonly runOnLimitedConnection: boolean
  private started = false

  constructor (private readonly components: ProtocolComponents, init: ViewProtocolInit = {}) {
    this.log = components.logger.forComponent('clawmatrix:view')
    this.protocol = protocolId(init.protocolPrefix ?? PROTOCOL_PREFIX, c.VIEW_PROTOCOL_NAME, c.VIEW_PROTOCOL_VERSION)
    this.snapshot = init.snapshot
    this.timeoutMs = init.timeoutMs ?? c.VIEW_TIMEOUT_MS
    this.maxViewBytes = init.maxViewBytes ?? c.MAX_VIEW_BYTES
    this.maxInboundStreams = init.maxInboundStreams ?? c.MAX_VIEW_INBOUND_STREAMS
    this.maxOutboundStreams = init.maxOutboundStreams ?? c.MAX_VIEW_OUTBOUND_STREAMS
    // Relayed members are inspected like direct ones.
    this.runOnLimitedConnection = init.runOnLimitedConnection ?? true
  }

  readonly [Symbol.toStringTag] = 'clawmatrix:view'

  async start (): Promise<void> {
    if (this.snapshot == null) throw new Error('the view protocol needs a snapshot to serve')
    await this.components.registrar.handle(this.protocol, this.handleView, {
      maxInboundStreams: this.maxInboundStreams,
      maxOutboundStreams: this.maxOutboundStreams,
      runOnLimitedConnection: this.runOnLimitedConnection
    })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    await this.components.registrar.unhandle(this.protocol)
    this.started = false
  }

  isStarted (): boolean {
    return this.started
  }

  private readonly handleView = async (stream: Stream, connection: Connection): Promise<void> => {
    // Wakeful, as every wait for a peer: a member busy with its host's synchronous work still answers.
    const deadline = new WakefulDeadline(this.timeoutMs)
    const signal = deadline.signal
    try {
      const lp = lpStream(stream, { maxDataLength: c.MAX_VIEW_REQUEST_BYTES })
      parseObject(await lp.read({ signal }), 'view request')
      const answer = new TextEncoder().encode(JSON.stringify(this.snapshot!()))
      if (answer.byteLength > this.maxViewBytes) throw new Error(`the view is ${answer.byteLength} bytes, above the ${this.maxViewBytes} byte limit`)
      await lp.write(answer, { signal })
      await stream.close({ signal })
      this.log.trace('served the view to %p', connection.remotePeer)
    } catch (err: any) {
      // A bad or slow request costs this stream only.
      this.log('view request from %p failed: %s', connection.remotePeer, err.message)
      stream.abort(err)
    } finally {
      deadline.clear()
    }
  }

  /** Asks a connected peer for its cluster view. */
  async fetch (peer: PeerId, options: AbortOptions = {}): Promise<ClusterViewSnapshot> {
    const deadline = new WakefulDeadline(this.timeoutMs, { signal: options.signal })
    const signal = deadline.signal
    let stream: Stream | undefined
    try {
      stream = await this.components.connectionManager.openStream(peer, this.protocol, { signal, runOnLimitedConnection: this.runOnLimitedConnection })
      const lp = lpStream(stream, { maxDataLength: this.maxViewBytes })
      await lp.write(new TextEncoder().encode('{}'), { signal })
      const snapshot = checkSnapshot(parseObject(await lp.read({ signal }), 'view'))
      await stream.close({ signal })
      return snapshot
    } catch (err: any) {
      stream?.abort(err)
      throw new ViewFetchError(describeFetchFailure(err, this), { cause: err })
    } finally {
      deadline.clear()
    }
  }

  /** For error messages: the limits this instance applies. */
  get limits (): { timeoutMs: number, maxViewBytes: number } {
    return { timeoutMs: this.timeoutMs, maxViewBytes: this.maxViewBytes }
  }
}

function describeFetchFailure (err: any, protocol: ViewProtocol): string {
  if (err instanceof ViewFetchError) return err.message
  if (err instanceof InvalidDataLengthError) return `the view is larger than the ${protocol.limits.maxViewBytes} byte limit`
  if (err.name === 'TimeoutError') return `no view within ${protocol.limits.timeoutMs / 1000} s`
  if (err.name === 'UnsupportedProtocolError') return `the node does not serve ${protocol.protocol} (an older clawmatrix?)`
  return `fetching the view failed: ${err.message}`
}

function parseObject (data: { subarray: () => Uint8Array }, what: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder().decode(data.subarray()))
  } catch {
    throw new ViewFetchError(`the ${what} is not JSON`)
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value)) throw new ViewFetchError(`the ${what} is not a JSON object`)
  return value as Record<string, unknown>
}

/** Enough of a shape check that a display cannot trip over what a peer sent. */
function checkSnapshot (value: Record<string, unknown>): ClusterViewSnapshot {
  const isString = (v: unknown): v is string => typeof v === 'string'
  if (!isName(value.nodeId) || !isString(value.peerId) || !isString(value.version) || !Array.isArray(value.nodes)) {
    throw new ViewFetchError('the view lacks a valid nodeId, peerId, version or nodes')
  }
  for (const [i, node] of value.nodes.entries()) {
    const wellFormed = node != null && typeof node === 'object' &&
      isName(node.nodeId) && isString(node.peerId) && isString(node.reach) && isString(node.lastSeen) &&
      Array.isArray(node.agents) && Array.isArray(node.models) && Array.isArray(node.tags) &&
      node.toolProxy != null && Array.isArray(node.toolProxy.allow) && Array.isArray(node.toolProxy.deny)
    if (!wellFormed) throw new ViewFetchError(`the view's node ${i} is malformed`)
  }
  return value as unknown as ClusterViewSnapshot
}
