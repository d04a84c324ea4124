/**
 * A TCP forwarder between two nodes, to make the path between them fail the
 * way real networks do: `blackhole()` stops carrying bytes either way while
 * every socket stays open (no FIN, no RST), as when the peer's machine froze
 * or a link drops packets; `delayMs` makes the path long.
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

  constructor (target: number, init: TcpForwarderInit = {}) {
    this.server = createServer(client => {
      const upstream = tcpConnect(target, '127.0.0.1')
      for (const socket of [client, upstream]) {
        this.sockets.add(socket)
        socket.on('close', () => { this.sockets.delete(socket) })
        socket.on('error', () => {})
      }
      const pass = (to: Socket) => (chunk: Buffer): void => {
        if (this.blackholed) return
        if (init.delayMs == null) to.write(chunk)
        else setTimeout(() => { if (!this.blackholed) to.write(chunk) }, init.delayMs)
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

  async close (): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise(resolve => this.server.close(resolve))
  }
}
