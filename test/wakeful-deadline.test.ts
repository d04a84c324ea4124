import { once } from 'node:events'
import { createServer, connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { WakefulDeadline } from '../src/services/wire/wakeful-deadline.js'

/** Blocks this thread, as a host's synchronous work does. */
function blockFor (ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) { /* busy */ }
}

const sockets: Socket[] = []
afterEach(() => { for (const s of sockets.splice(0)) s.destroy() })

describe('a wakeful deadline', () => {
  it('lets data that arrived while the event loop was blocked be read before it expires', async () => {
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const accepted = once(server, 'connection')
    const client = connect((server.address() as { port: number }).port, '127.0.0.1')
    sockets.push(client)
    await once(client, 'connect')
    const [inbound] = await accepted as [Socket]
    sockets.push(inbound)
    server.close()

    const events: string[] = []
    const deadline = new WakefulDeadline(50)
    deadline.signal.addEventListener('abort', () => events.push(`abort:${(deadline.signal.reason as Error).name}`))
    inbound.once('data', () => events.push('data'))
    client.write('request')
    // the data is in the socket; the loop is blocked well past the deadline
    blockFor(400)
    await once(deadline.signal, 'abort')
    // a plain timeout would have fired first: expired timers run before the I/O that waited
    expect(events).toEqual(['data', 'abort:TimeoutError'])
  })

  it('expires with a TimeoutError when nothing comes, and not once cleared', async () => {
    const deadline = new WakefulDeadline(20)
    await once(deadline.signal, 'abort')
    expect((deadline.signal.reason as Error).name).toBe('TimeoutError')

    const cleared = new WakefulDeadline(20)
    cleared.clear()
    const later = new WakefulDeadline(100)
    await once(later.signal, 'abort')
    expect(cleared.signal.aborted).toBe(false)
  })
})
