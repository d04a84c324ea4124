/**
 * A relay that dies under a request in flight: two dial-out members meet
 * through one of two relays (real `clawmatrix relay` processes), and the
 * relay carrying their circuit is killed (SIGKILL) mid-request. A model
 * request the host had not started answering moves to the other relay at
 * once and completes; one already streaming its answer fails at once,
 * saying which relay went away and its state; a hand-off the host runs is
 * followed again through the other relay (same id: the same run); a model
 * stream kept idle through the dead relay is let go and the next request
 * runs through the other one. Nothing waits for a heartbeat or a timeout.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runCli, type CliProcess } from './helpers/cli.js'
import { SECRET, testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

/** An OpenAI-style upstream whose answers the test holds and releases. */
class HeldUpstream {
  readonly arrivals: Array<{ req: IncomingMessage, res: ServerResponse, closed: boolean }> = []
  private constructor (private readonly server: Server, readonly url: string) {}

  static async start (onRequest: (arrival: HeldUpstream['arrivals'][number]) => void): Promise<HeldUpstream> {
    let upstream: HeldUpstream | undefined
    const server = createServer((req, res) => {
      req.resume()
      const arrival = { req, res, closed: false }
      res.on('close', () => { arrival.closed = true })
      upstream!.arrivals.push(arrival)
      onRequest(arrival)
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    upstream = new HeldUpstream(server, `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`)
    return upstream
  }

  async close (): Promise<void> {
    this.server.closeAllConnections()
    await new Promise(resolve => this.server.close(resolve))
  }
}

function sseChunk (text: string): string {
  return `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'slow', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`
}

function startStream (res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' })
  res.write(sseChunk('first '))
}

function finishStream (res: ServerResponse): void {
  res.write(sseChunk('second'))
  res.end('data: [DONE]\n\n')
}

let dir: string
let starts: string
let release: string
const nodes = testNodes()
const SLEEPER = `const fs = require('node:fs'); const [starts, release] = process.argv.slice(1)
fs.appendFileSync(starts, process.pid + '\\n')
const timer = setInterval(() => { if (fs.existsSync(release)) { clearInterval(timer); process.stdout.write('done') } }, 50)`
const relays: CliProcess[] = []
let upstream: HeldUpstream | undefined

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clawmatrix-failover-'))
  starts = join(dir, 'sleeper-starts')
  release = join(dir, 'sleeper-release')
})
afterEach(async () => {
  await Promise.allSettled(relays.splice(0).map(async r => r.stop()))
  await nodes.cleanup()
  await upstream?.close()
  upstream = undefined
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

async function startRelay (nodeId: string): Promise<{ process: CliProcess, address: string, peerId: string }> {
  const process = runCli(['relay', '--node-id', nodeId, '--listen-host', '127.0.0.1', '--listen-port', '0', '--proxy-port', '0', '--state-dir', join(dir, nodeId)], { CLAWMATRIX_SECRET: SECRET })
  relays.push(process)
  const match = await process.waitForOutput(/(\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/(\w+))/)
  return { process, address: match[1]!, peerId: match[2]! }
}

/** Two relays, a host of model `slow` and a caller, both dial-out only and holding a reservation on each relay. */
async function twoRelays (): Promise<{ relays: Array<Awaited<ReturnType<typeof startRelay>>>, host: TestNode, caller: TestNode }> {
  const started = [await startRelay('r1'), await startRelay('r2')]
  const peers = started.map((r, i) => ({ nodeId: `r${i + 1}`, url: r.address }))
  const host = await nodes.start({
    nodeId: 'host',
    peers,
    models: upstream == null ? [] : [{ id: 'slow', provider: 'test', baseUrl: upstream.url }],
    // An agent that notes its start and works until the test writes `release`.
    agents: [{ id: 'sleeper', command: [process.execPath, '-e', SLEEPER, starts, release] }]
  })
  const caller = await nodes.start({ nodeId: 'caller', peers })
  // The caller can reach the host through either relay: its card names a circuit through each.
  await waitFor('the caller to know circuits to the host through both relays', () => {
    const card = caller.node.view.card(host.node.peerId.toString())
    return started.every(r => card?.addresses.some(a => a.includes(`/p2p/${r.peerId}/p2p-circuit`)))
  }, { timeoutMs: 60_000 })
  return { relays: started, host, caller }
}

/** The relay the caller's connection to the host goes through, once there is one. */
async function relayUnder (caller: TestNode, host: TestNode, relays: Array<{ peerId: string }>): Promise<number> {
  const address = await waitFor('the caller to connect to the host', () =>
    caller.node.swarm.getConnections(host.node.peerId).find(c => c.status === 'open')?.remoteAddr.toString())
  const index = relays.findIndex(r => address.includes(`/p2p/${r.peerId}/p2p-circuit`))
  expect(index).toBeGreaterThanOrEqual(0)
  return index
}

function chat (caller: TestNode, signal?: AbortSignal): Promise<Response> {
  return fetch(`${caller.node.http.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'clawmatrix/slow', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    signal
  })
}

describe('a relay killed under a request in flight', { timeout: 120_000 }, () => {
  it('before the answer started: the request moves to the other relay and completes', async () => {
    // The first request is held unanswered; the one that comes after the kill is answered.
    upstream = await HeldUpstream.start(arrival => { if (upstream!.arrivals.length > 1) { startStream(arrival.res); finishStream(arrival.res) } })
    const t = await twoRelays()
    const answer = chat(t.caller)
    await waitFor('the request to reach the upstream', () => upstream!.arrivals.length === 1)
    const used = await relayUnder(t.caller, t.host, t.relays)

    t.relays[used]!.process.child.kill('SIGKILL')
    const response = await answer
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text).toContain('second')
    expect(text).toContain('[DONE]')
    // The host dropped the first upstream request when its caller went away; the second came through the other relay.
    expect(upstream.arrivals).toHaveLength(2)
    await waitFor('the first upstream request to be cancelled', () => upstream!.arrivals[0]!.closed)
    const now = t.caller.node.swarm.getConnections(t.host.node.peerId).map(c => c.remoteAddr.toString())
    expect(now.some(a => a.includes(`/p2p/${t.relays[1 - used]!.peerId}/p2p-circuit`))).toBe(true)
  })

  it('a kept model stream through a relay that died while idle: the next request runs through the other relay', async () => {
    upstream = await HeldUpstream.start(arrival => { startStream(arrival.res); finishStream(arrival.res) })
    const t = await twoRelays()
    expect(await (await chat(t.caller)).text()).toContain('[DONE]')
    const used = await relayUnder(t.caller, t.host, t.relays)
    // Kept streams are the default: the answered request's stream waits in the caller's pool.
    const pool = t.caller.node.modelProxy.protocol.pool!
    expect(pool.idleCounts()).toEqual({ [t.host.node.peerId.toString()]: 1 })

    t.relays[used]!.process.child.kill('SIGKILL')
    const text = await (await chat(t.caller)).text()
    expect(text).toContain('second')
    expect(text).toContain('[DONE]')
    expect(upstream.arrivals).toHaveLength(2)
    const now = t.caller.node.swarm.getConnections(t.host.node.peerId).filter(c => c.status === 'open').map(c => c.remoteAddr.toString())
    expect(now.every(a => a.includes(`/p2p/${t.relays[1 - used]!.peerId}/p2p-circuit`))).toBe(true)
    // The stream through the dead relay is gone; the one the request used is kept.
    expect(pool.idleCounts()).toEqual({ [t.host.node.peerId.toString()]: 1 })
  })

  it('while the answer streams: it fails at once, naming the relay and its state', async () => {
    upstream = await HeldUpstream.start(arrival => { startStream(arrival.res) })
    const t = await twoRelays()
    const response = await chat(t.caller)
    expect(response.status).toBe(200)
    const reader = response.body!.getReader()
    const first = new TextDecoder().decode((await reader.read()).value)
    expect(first).toContain('first')
    const used = await relayUnder(t.caller, t.host, t.relays)

    t.relays[used]!.process.child.kill('SIGKILL')
    let rest = ''
    for (let chunk = await reader.read(); chunk.done !== true; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value)
    expect(rest).not.toContain('[DONE]')
    const name = `r${used + 1}`
    expect(rest).toMatch(new RegExp(`the connection to host through relay ${name} closed after the work was accepted; ${name} is (offline|unreachable) \\(.*configured.*\\)`))
    expect(rest).not.toContain(t.relays[used]!.peerId)
  })

  it('a hand-off the host accepted and runs: the caller attaches to the same run through the other relay', async () => {
    const t = await twoRelays()
    const handoff = t.caller.node.client.handoff('sleeper', 'work until told', undefined)
    await waitFor('the host to run the hand-off', () => t.host.node.work.handoff.running === 1)
    const used = await relayUnder(t.caller, t.host, t.relays)

    t.relays[used]!.process.child.kill('SIGKILL')
    await waitFor('the caller to reach the host through the other relay', () => t.caller.node.swarm.getConnections(t.host.node.peerId)
      .some(c => c.status === 'open' && c.remoteAddr.toString().includes(`/p2p/${t.relays[1 - used]!.peerId}/p2p-circuit`)))
    await writeFile(release, '')
    expect((await handoff).reply).toBe('done')
    // The same run, not a second one: the agent started once.
    expect((await readFile(starts, 'utf8')).trim().split('\n')).toHaveLength(1)
  })
})
