/**
 * `@libp2p/websockets` with the socket of every closed connection released.
 *
 * In @libp2p/websockets 10.1.21 `connection.abort()` ends in `sendReset()`,
 * which calls `websocket.close(1006)`. 1006 may not be sent (RFC 6455 7.4.1):
 * `ws` (listener side) and the WHATWG WebSocket of Node (dialer side, undici)
 * both throw, the error is logged and swallowed, and the socket stays open
 * for as long as the remote keeps it: for good when the remote is a frozen
 * or vanished peer, which is exactly when a heartbeat aborts. A graceful
 * close to such a peer waits for its close frame: 30 s in `ws`, forever in
 * undici. docs/upstream-websockets-reset.md describes the bug for upstream.
 *
 * For each connection it hands the upgrader, this wrapper replaces
 * `sendReset()` with dropping the socket, and after a graceful close it
 * drops the socket if the remote has not finished the closing handshake
 * within `closeGraceMs`. It is also where inbound connections are admitted
 * per IP before Noise (./inbound-admission.ts).
 *
 * It also sends each write as one WebSocket frame. The published
 * `sendData()` sends every part of the list it is given as a frame of its
 * own, and Noise hands it each message as two parts (the 2-byte length and
 * the ciphertext): two frames, two socket writes and two 'message' events
 * on the remote for every message (docs/upstream-websockets-frames.md).
 */
import { subscribe } from 'node:diagnostics_channel'
import { serviceCapabilities, transportSymbol } from '@libp2p/interface'
import { webSockets, type WebSocketsComponents, type WebSocketsInit } from '@libp2p/websockets'
import { concatBytes } from './bytes.js'
import type { InboundAdmission } from './inbound-admission.js'
import type { AbstractMultiaddrConnection } from '@libp2p/utils'
import type { CreateListenerOptions, DialTransportOptions, Listener, MultiaddrConnection, Transport, Upgrader, Connection } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Socket } from 'node:net'

export interface WebSocketTransportInit extends WebSocketsInit {
  /**
   * How long a gracefully closed connection waits for the remote's close
   * frame before its socket is destroyed.
   *
   * @default 5000
   */
  closeGraceMs?: number
  /**
   * Release sockets as described above; false leaves the transport as published (to measure the bug).
   *
   * @default true
   */
  releaseSockets?: boolean
  /** Admits (or refuses) inbound connections per IP before Noise; none when absent. */
  admission?: InboundAdmission
  /**
   * Send the parts of one write (a Noise message's length and ciphertext) as
   * one WebSocket frame; false sends a frame per part, as published (to measure it).
   *
   * @default true
   */
  joinParts?: boolean
}

export const DEFAULT_CLOSE_GRACE_MS = 5_000

/**
 * Parts of one write are joined into frames of up to this many bytes: a
 * whole Noise message (at most 2 + 65,535 bytes) is always one frame, while a
 * backlog flushed at once after a drain is not copied into one huge buffer.
 */
export const MAX_JOINED_FRAME_BYTES = 2 + 65_535

/** `ws`'s WebSocket (inbound) or the WHATWG one (outbound), as @libp2p/websockets keeps it. */
interface AnyWebSocket {
  readyState: number
  terminate?: () => void
  addEventListener(type: 'close', listener: () => void, options?: { once?: boolean }): void
}

const CLOSED = 3

export function webSocketTransport (init: WebSocketTransportInit = {}): (components: WebSocketsComponents) => Transport {
  const { closeGraceMs, admission, releaseSockets, joinParts, ...webSocketsInit } = init
  const create = webSockets(webSocketsInit)
  if (releaseSockets === false && admission == null && joinParts === false) return create
  return components => new FixedWebSockets(create(components), {
    closeGraceMs: releaseSockets === false ? undefined : closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS,
    joinParts: joinParts !== false,
    admission
  })
}

interface Fixes {
  /** Undefined: sockets are left as the transport leaves them. */
  closeGraceMs?: number
  joinParts: boolean
  admission?: InboundAdmission
}

class FixedWebSockets implements Transport {
  readonly [transportSymbol] = true
  readonly [Symbol.toStringTag] = '@libp2p/websockets'
  readonly [serviceCapabilities] = ['@libp2p/transport']

  constructor (private readonly transport: Transport, private readonly fixes: Fixes) {
    if (fixes.closeGraceMs != null) watchUndiciSockets()
  }

  async dial (ma: Multiaddr, options: DialTransportOptions): Promise<Connection> {
    return this.transport.dial(ma, { ...options, upgrader: this.releasing(options.upgrader) })
  }

  createListener (options: CreateListenerOptions): Listener {
    return this.transport.createListener({ ...options, upgrader: this.releasing(options.upgrader) })
  }

  readonly listenFilter = (multiaddrs: Multiaddr[]): Multiaddr[] => this.transport.listenFilter(multiaddrs)
  readonly dialFilter = (multiaddrs: Multiaddr[]): Multiaddr[] => this.transport.dialFilter(multiaddrs)

  /** The upgrader, with each connection it is given fixed first (and inbound ones admitted). */
  private releasing (upgrader: Upgrader): Upgrader {
    const { closeGraceMs, joinParts, admission } = this.fixes
    const fix = (maConn: MultiaddrConnection): void => {
      if (closeGraceMs != null) releaseSocketOnClose(maConn, closeGraceMs)
      if (joinParts) sendJoined(maConn)
    }
    return new Proxy(upgrader, {
      get (target, property) {
        if (property === 'upgradeOutbound') {
          return async (maConn: MultiaddrConnection, opts: any) => {
            fix(maConn)
            return target.upgradeOutbound(maConn, opts)
          }
        }
        if (property === 'upgradeInbound') {
          return async (maConn: MultiaddrConnection, opts: any) => {
            fix(maConn)
            if (admission == null) return target.upgradeInbound(maConn, opts)
            const release = admission.admit(maConn)
            try {
              await target.upgradeInbound(maConn, opts)
            } finally {
              release()
            }
          }
        }
        const value = Reflect.get(target, property, target)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
  }
}

/** The list `sendData()` is given (uint8arraylist's, through @libp2p/utils). */
type Parts = Parameters<AbstractMultiaddrConnection['sendData']>[0]

/**
 * Has the connection's own `sendData()` (which keeps its back-pressure
 * accounting) send the parts of each write joined, so each becomes one
 * frame. Joining copies the parts once; a frame less saves its header, a
 * socket write, and on the remote a 'message' event and a decoder pass.
 * (The dialer's WebSocket, undici's, copies every frame anyway to mask it.)
 */
function sendJoined (maConn: MultiaddrConnection): void {
  const connection = maConn as unknown as { sendData?: (data: Parts) => unknown }
  const sendData = connection.sendData
  if (typeof sendData !== 'function') return
  connection.sendData = (data: Parts) => {
    joinParts(data)
    return sendData.call(maConn, data)
  }
}

/**
 * Joins the list's parts in place into as few runs of at most
 * MAX_JOINED_FRAME_BYTES as their order allows. In place: the caller
 * (AbstractMessageStream) hands over a list of its own for this purpose.
 */
export function joinParts (data: Parts): void {
  const parts = Array.from(data)
  if (parts.length < 2) return
  const runs: Uint8Array[] = []
  let run: Uint8Array[] = []
  let runBytes = 0
  const endRun = (): void => {
    if (run.length > 0) runs.push(run.length === 1 ? run[0]! : concatBytes(run, runBytes))
    run = []
    runBytes = 0
  }
  for (const part of parts) {
    if (runBytes + part.byteLength > MAX_JOINED_FRAME_BYTES) endRun()
    run.push(part)
    runBytes += part.byteLength
  }
  endRun()
  data.consume(data.byteLength)
  data.appendAll(runs)
}


function releaseSocketOnClose (maConn: MultiaddrConnection, closeGraceMs: number): void {
  const websocket: AnyWebSocket | undefined = (maConn as any).websocket
  if (websocket == null) return
  const drop = (): void => { dropSocket(websocket) }
  // What sendReset() is for: the remote learns of the reset when its socket closes.
  ;(maConn as any).sendReset = drop
  maConn.addEventListener('close', event => {
    if (websocket.readyState === CLOSED) return
    if (event.error != null) {
      drop()
      return
    }
    // Closed gracefully: the close frame is out; give the remote a moment to answer it.
    const timer = setTimeout(drop, closeGraceMs)
    timer.unref()
    websocket.addEventListener('close', () => { clearTimeout(timer) }, { once: true })
  }, { once: true })
}

function dropSocket (websocket: AnyWebSocket): void {
  if (websocket.readyState === CLOSED) return
  if (typeof websocket.terminate === 'function') {
    websocket.terminate()
    return
  }
  undiciSockets.get(websocket)?.destroy()
}

/**
 * Node's WebSocket (undici) keeps its socket private and has no way to drop
 * it. Its diagnostics channels name both: 'undici:client:connected' gives each
 * socket undici opens, 'undici:websocket:open' each WebSocket with its
 * socket's local address. Sockets wait in `connecting` until they close or
 * carry a WebSocket, so both maps stay as small as the open sockets.
 */
const connecting = new Map<string, Socket>()
const undiciSockets = new WeakMap<object, Socket>()
let watching = false

function watchUndiciSockets (): void {
  if (watching) return
  watching = true
  const key = (address: unknown, port: unknown): string => `${String(address)}|${String(port)}`
  subscribe('undici:client:connected', (message: any) => {
    const socket: Socket | undefined = message?.socket
    if (socket?.localPort == null) return
    const id = key(socket.localAddress, socket.localPort)
    connecting.set(id, socket)
    socket.once('close', () => { if (connecting.get(id) === socket) connecting.delete(id) })
  })
  subscribe('undici:websocket:open', (message: any) => {
    const id = key(message?.address?.address, message?.address?.port)
    const socket = connecting.get(id)
    if (socket == null || message.websocket == null) return
    connecting.delete(id)
    undiciSockets.set(message.websocket, socket)
  })
}
