import { createServer } from 'node:net'

/** Ports handed out by freePort in this process, so two callers never get the same one. */
const handedOut = new Set<number>()

/**
 * A free port below the kernel's ephemeral range (32768 and up on Linux), so
 * nothing that binds port 0 meanwhile (a node's HTTP server, a dial) can take
 * it before the gateway it is meant for starts, or while a test expects it
 * to be closed.
 */
export async function freePort (): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (handedOut.has(port)) continue
    const free = await new Promise<boolean>(resolve => {
      const server = createServer()
      server.once('error', () => { resolve(false) })
      server.listen(port, '127.0.0.1', () => { server.close(() => { resolve(true) }) })
    })
    if (free) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error('no free port found between 20000 and 32000')
}
