/**
 * A TCP forwarder between two nodes, to make the path between them fail the
 * way real networks do: `blackhole()` stops carrying bytes either way while
 * every socket stays open (no FIN, no RST), as when the peer's machine froze
 * or a link drops packets; `hold()` keeps every byte until `release()`, as
 * when the peer's process stalls and then goes on (an OpenClaw gateway's
 * synchronous work); `delayMs` makes the path long.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'

export interface TcpForwarderInit {
  /** Every chunk is passed on this much later, each way (order kept). */
  delayMs?: number
}

export class TcpForwarder {
  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  private blackholed = false
  /** While held: the writes to make on release, in order. */
  private held?: Array<() => void>

  constructor (target: number, init: TcpForwarderInit = {}) {
    this.server = createServer(client => {
      const upstream = tcpConnect(target, '127.0.0.1')
      for (const socket of [client, upstream]) {
        this.sockets.add(socket)
        socket.on('close', () => { this.sockets.delete(socket) })
        socket.on('error', () => {})
      }
      const write = (to: Socket, chunk: Buffer): void => {
        if (this.blackholed) return
        if (this.held != null) this.held.push(() => to.write(chunk))
        else to.write(chunk)
      }
      const pass = (to: Socket) => (chunk: Buffer): void => {
        if (init.delayMs == null) write(to, chunk)
        else setTimeout(() => { write(to, chunk) }, init.delayMs)
      }
      client.on('data', pass(upstream))
      upstream.on('data', pass(client))
      client.on('end', () => { if (!this.blackholed) upstream.end() })
      upstream.on('end', () => { if (!this.blackholed) client.end() })
    })
  }

  async listen (): Promise<number> {
    await new Promise<void>(resolve => this.server.listen(0, '127.0.0.1', resolve))
    return (this.server.address() as { port: number }).port
  }

  /** From now on nothing passes either way, and nothing is closed: both ends see silence. */
  blackhole (): void {
    this.blackholed = true
  }

  /** From now on bytes are kept, not passed, either way, until release(). */
  hold (): void {
    this.held ??= []
  }

  /** Passes on what was held, in order, and carries bytes again. */
  release (): void {
    const held = this.held ?? []
    this.held = undefined
    for (const write of held) write()
  }

  async close (): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise(resolve => this.server.close(resolve))
  }
}
