/**
 * A model host whose connection died silently (its machine froze, or the
 * network drops packets without a FIN or RST): a request on a kept stream to
 * it moves to another host within seconds instead of waiting for the
 * heartbeat (45 s) or the stream's silence limit (60 s). Real nodes on
 * loopback, the caller reaching each host through a TCP forwarder that can
 * stop carrying bytes without closing anything, and real fake upstreams.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { FakeOpenAIServer } from './fixtures/fake-upstream/index.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { TcpForwarder } from './helpers/tcp-forwarder.js'
import { waitFor } from './helpers/wait.js'
import type { Connection } from '@libp2p/interface'

const nodes = testNodes()
const closers: Array<() => Promise<void>> = []
afterEach(async () => {
  await nodes.cleanup()
  await Promise.allSettled(closers.splice(0).map(async close => { await close() }))
})

async function fakeUpstream (): Promise<FakeOpenAIServer> {
  const fake = new FakeOpenAIServer()
  await fake.start()
  closers.push(async () => { await fake.stop() })
  return fake
}

/** A forwarder to `a`'s listening port, and the address a node dials `a` at through it. */
async function pathTo (a: TestNode, delayMs?: number): Promise<{ forwarder: TcpForwarder, url: string }> {
  const port = Number(a.wsAddress().match(/\/tcp\/(\d+)\//)![1])
  const forwarder = new TcpForwarder(port, { delayMs })
  closers.push(async () => { await forwarder.close() })
  return { forwarder, url: `/ip4/127.0.0.1/tcp/${await forwarder.listen()}/ws/p2p/${a.node.swarm.peerId.toString()}` }
}

async function host (nodeId: string, url: string, fake: FakeOpenAIServer, peer = 'a'): Promise<TestNode> {
  return await nodes.start({ nodeId, peers: [{ nodeId: peer, url }], models: [{ id: 'chat', provider: 'vllm', baseUrl: fake.url, upstreamModel: fake.models[0] }] })
}

/**
 * `a` calls; host-a and host-b both host `chat`. host-b's path is long (100 ms
 * each way), so a asks host-a first: the order is the round-trip time's.
 * The heartbeat keeps its defaults (15 s, 3 missed): it gives a dead host up
 * only after 45 s.
 */
async function twoHosts (modelRouting: Record<string, unknown> = {}): Promise<{ a: TestNode, hostA: TestNode, hostB: TestNode, pathA: TcpForwarder, fakeA: FakeOpenAIServer, fakeB: FakeOpenAIServer }> {
  const a = await nodes.start({ nodeId: 'a', listen: true, modelRouting })
  const [fakeA, fakeB] = [await fakeUpstream(), await fakeUpstream()]
  const [toA, toB] = [await pathTo(a), await pathTo(a, 100)]
  const hostA = await host('host-a', toA.url, fakeA)
  const hostB = await host('host-b', toB.url, fakeB)
  await waitFor('a to order host-a before host-b', () => {
    const order = a.node.view.resolveModel('chat').map(c => `${c.nodeId}:${c.reach}`)
    return order.join(',') === 'host-a:direct,host-b:direct'
  })
  return { a, hostA, hostB, pathA: toA.forwarder, fakeA, fakeB }
}

interface Answer { status: number, node: string | null, text: string }

async function ask (a: TestNode, content = 'the quick brown fox'): Promise<Answer> {
  const res = await fetch(`${a.node.http.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content }] })
  })
  return { status: res.status, node: res.headers.get('x-clawmatrix-node'), text: await res.text() }
}

function connectionTo (a: TestNode, other: TestNode): Connection {
  const [connection] = a.node.swarm.getConnections(other.node.swarm.peerId)
  expect(connection).toBeDefined()
  return connection!
}

describe('a model host whose connection died silently', () => {
  it('moves a request on a kept stream to another host within seconds, and sends none there after', { timeout: 20_000 }, async () => {
    const { a, hostA, pathA, fakeA, fakeB } = await twoHosts()
    // A first request keeps its stream to host-a open.
    const warm = await ask(a)
    expect(warm).toMatchObject({ status: 200, node: 'host-a' })
    expect(a.node.modelProxy.protocol.pool!.idleCounts()).toEqual({ [hostA.node.swarm.peerId.toString()]: 1 })

    // host-a's path goes silent: no byte passes, nothing is closed.
    pathA.blackhole()
    const moved = await ask(a)
    expect(moved).toMatchObject({ status: 200, node: 'host-b' })
    expect(JSON.parse(moved.text).choices[0].message.content).toBe('fox brown quick the')
    // The request never reached host-a's upstream; the connection is still open (the heartbeat has not given host-a up).
    expect(fakeA.requests).toHaveLength(1)
    expect(connectionTo(a, hostA).status).toBe('open')

    // The next requests do not wait on the silent connection again: host-b at once.
    expect(await ask(a)).toMatchObject({ status: 200, node: 'host-b' })
    expect(await ask(a)).toMatchObject({ status: 200, node: 'host-b' })
    expect(fakeA.requests).toHaveLength(1)
    expect(fakeB.requests).toHaveLength(3)
    expect(a.node.modelProxy.protocol.pool!.idleCounts()[hostA.node.swarm.peerId.toString()]).toBeUndefined()
    // Three requests left host-a in a row, yet it does not cool down: a silent connection is not a failing host
    // (it may have only stalled; one that is gone is the heartbeat's to give up).
    const status = await (await fetch(`${a.node.http.url}/clawmatrix/status`)).json() as { modelRouting: { cooldowns: Array<{ nodeId: string, coolingUntil?: string }> } }
    expect(status.modelRouting.cooldowns.filter(row => row.coolingUntil != null)).toEqual([])
  })

  it('waits for the only host when its connection stalls, and answers once it goes on', { timeout: 30_000 }, async () => {
    // Probes quick enough that a 1 s stall is far past them; the heartbeat patient (10 beats of 1 s).
    const a = await nodes.start({ nodeId: 'a', listen: true, modelRouting: { probeAfterMs: 200, probeTimeoutMs: 200 }, heartbeat: { intervalMs: 1_000, maxMissed: 10 } })
    const fake = await fakeUpstream()
    const path = await pathTo(a)
    const only = await host('host-a', path.url, fake)
    await waitFor('a to reach host-a', () => a.node.view.nodes().some(n => n.nodeId === 'host-a' && n.reach === 'direct'))
    expect(await ask(a)).toMatchObject({ status: 200, node: 'host-a' })

    // host-a's process stalls (an OpenClaw gateway's synchronous work): its bytes are held, not lost.
    path.forwarder.hold()
    const waiting = [ask(a, 'one two'), ask(a, 'three four')]
    // Past both probes by far: a's heartbeat has found a beat to host-a unanswered for a whole interval.
    await waitFor('a beat to host-a to go unanswered for an interval', () => (a.node.heartbeat.get(only.node.swarm.peerId)?.missed ?? 0) >= 1)
    path.forwarder.release()
    // No other host to move to: both requests waited, and host-a answered them (the probe would have failed them).
    const answers = await Promise.all(waiting)
    expect(answers.map(answer => [answer.status, answer.node])).toEqual([[200, 'host-a'], [200, 'host-a']])
    expect(answers.map(answer => JSON.parse(answer.text).choices[0].message.content)).toEqual(['two one', 'four three'])
  })

  it('finds a host behind a relay silent too, and names the relay', { timeout: 30_000 }, async () => {
    // a, host-a and host-b meet only through the hub (their relay); host-a's link to the hub can go silent.
    const hub = await nodes.start({ nodeId: 'hub', listen: true })
    const a = await nodes.start({ nodeId: 'a', peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    const [fakeA, fakeB] = [await fakeUpstream(), await fakeUpstream()]
    const [toA, toB] = [await pathTo(hub), await pathTo(hub, 100)]
    await host('host-a', toA.url, fakeA, 'hub')
    await host('host-b', toB.url, fakeB, 'hub')
    await waitFor('a to order host-a before host-b, both through the hub', () =>
      a.node.view.resolveModel('chat').map(c => `${c.nodeId}:${c.reach}`).join(',') === 'host-a:relayed,host-b:relayed')
    expect(await ask(a)).toMatchObject({ status: 200, node: 'host-a' })

    toA.forwarder.blackhole()
    expect(await ask(a)).toMatchObject({ status: 200, node: 'host-b' })
    expect(fakeA.requests).toHaveLength(1)
    // With host-b gone too, the error says which host is silent and through which relay.
    fakeB.reply = { fail: { status: 500, message: 'host-b is down for this test' } }
    const failed = await ask(a)
    expect(failed.status).toBe(500)
    expect(JSON.parse(failed.text).error.message).toMatch(/host-a is silent: its connection \(through relay hub\) has answered no ping/)
  })

  it('keeps waiting for a slow host whose connection answers the probe', { timeout: 30_000 }, async () => {
    const { a, hostA, fakeA, fakeB } = await twoHosts({ probeAfterMs: 500 })
    expect(await ask(a)).toMatchObject({ status: 200, node: 'host-a' })
    // Count the probes: the connection's muxer pings (a spy on the real muxer, which still pings).
    const muxer = (connectionTo(a, hostA) as unknown as { muxer: { ping: () => Promise<number> } }).muxer
    const ping = muxer.ping.bind(muxer)
    let pings = 0
    muxer.ping = async () => { pings++; return await ping() }

    // A model that thinks 4x the probe delay before its first byte, for three requests at once.
    fakeA.reply = { headDelayMs: 2_000 }
    const answers = await Promise.all(['one two', 'three four', 'five six'].map(async content => ask(a, content)))
    expect(answers.map(answer => [answer.status, answer.node])).toEqual([[200, 'host-a'], [200, 'host-a'], [200, 'host-a']])
    expect(answers.map(answer => JSON.parse(answer.text).choices[0].message.content)).toEqual(['two one', 'four three', 'six five'])
    expect(pings).toBeGreaterThanOrEqual(1)
    expect(fakeB.requests).toHaveLength(0)
  })
})
