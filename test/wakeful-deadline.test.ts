import { createHook } from 'node:async_hooks'
import { spawn, type ChildProcess } from 'node:child_process'
import { getEventListeners, once } from 'node:events'
import { createServer, connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CARD_VERSION, type Card } from '../src/services/cluster/card.js'
import { cardSnapshots, CardSnapshotTimeoutError, type CardSnapshots } from '../src/services/cluster/card-snapshot.js'
import { ClusterView } from '../src/services/cluster/cluster-view.js'
import { LocalModels } from '../src/services/model-proxy/local-models.js'
import { ModelStreamProtocol } from '../src/services/model-proxy/model-protocol.js'
import { libp2pComponents } from '../src/services/wire/components.js'
import { IdleTimeoutError, RefusedError } from '../src/services/wire/errors.js'
import { OutboundExchange, type OutboundInit } from '../src/services/wire/outbound.js'
import { WakefulDeadline } from '../src/node/wakeful-deadline.js'
import { startSwarm } from './fixtures/proto-harness.js'
import { waitFor } from './helpers/wait.js'
import { Heartbeat } from '../src/node/heartbeat.js'
import type { Swarm } from '../src/node/swarm.js'
import type { ModelRequestFrame } from '../src/services/model-proxy/messages.js'
import type { Frame } from '../src/services/wire/frame.js'
import type { PeerId } from '@libp2p/interface'

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

describe('the deadline of a single timer', () => {
  it('is moved by restart() without expiring, and expires once the restarts stop', async () => {
    const deadline = new WakefulDeadline(60)
    const started = performance.now()
    // Restarted every 20 ms for 200 ms: never 60 ms without one.
    await new Promise<void>(resolve => {
      const tick = setInterval(() => {
        deadline.restart()
        if (performance.now() - started > 200) { clearInterval(tick); resolve() }
      }, 20)
    })
    expect(deadline.signal.aborted).toBe(false)
    await once(deadline.signal, 'abort')
    expect(deadline.expired).toBe(true)
    expect((deadline.signal.reason as Error).name).toBe('TimeoutError')
  })

  it('cannot pass while paused (nothing awaited), and runs again from the next restart()', async () => {
    const deadline = new WakefulDeadline(30)
    deadline.pause()
    const pausedAt = performance.now()
    await waitFor('several deadlines\' worth of pause', () => performance.now() - pausedAt > 200)
    expect(deadline.signal.aborted).toBe(false)
    deadline.restart()
    await once(deadline.signal, 'abort')
    expect(deadline.expired).toBe(true)
  })

  it('aborts with the operation\'s reason, which is not expiry, and lets go of the operation\'s signal when cleared', () => {
    const operation = new AbortController()
    const cleared = new WakefulDeadline(10_000, { signal: operation.signal })
    const followed = new WakefulDeadline(10_000, { signal: operation.signal })
    expect(getEventListeners(operation.signal, 'abort')).toHaveLength(2)
    cleared.clear()
    expect(getEventListeners(operation.signal, 'abort')).toHaveLength(1)
    const reason = new Error('the client left')
    operation.abort(reason)
    expect(followed.signal.reason).toBe(reason)
    expect(followed.expired).toBe(false)
    expect(cleared.signal.aborted).toBe(false)
    expect(new WakefulDeadline(10, { signal: operation.signal }).signal.reason).toBe(reason)
  })

  it('still expires after a block when nothing came: one grace, not an endless one', async () => {
    await new Promise(resolve => setImmediate(resolve))
    const deadline = new WakefulDeadline(20, { graceMs: 50 })
    blockFor(200)
    // a timer set after the block runs after the deadline's: by then that one fired, late, and was re-armed
    await new Promise(resolve => setTimeout(resolve, 0))
    expect(deadline.signal.aborted).toBe(false)
    await once(deadline.signal, 'abort')
    expect(deadline.expired).toBe(true)
  })
})

const PEER_PROTOCOL = '/clawmatrix-test/wakeful/1.0.0'
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url))

/** A peer in a child process (test/fixtures/<fixture>.ts): its answers travel while this process is blocked. */
interface ChildPeer {
  child: ChildProcess
  peer: PeerId
  /** Request ids the peer received. */
  got: Set<string>
}

async function spawnPeer (fixture: string, caller: Swarm): Promise<ChildPeer> {
  const child = spawn(process.execPath, [
    '--experimental-transform-types', '--disable-warning=ExperimentalWarning',
    '--import', join(fixtures, 'proto-ts-resolve.mjs'), join(fixtures, `${fixture}.ts`)
  ], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  const [first] = await once(lines, 'line') as [string]
  const { peerId, addresses } = JSON.parse(first) as { peerId: string, addresses: string[] }
  const got = new Set<string>()
  lines.on('line', line => { got.add((JSON.parse(line) as { got: string }).got) })
  await caller.dial(multiaddr(addresses[0]!))
  return { child, peer: peerIdFromString(peerId), got }
}

/**
 * Has the peer send the held answer of request `id`, then blocks this
 * process until `until` (performance.now()) plus a second. The block starts
 * after the timers phase of the loop (from setImmediate), as a host's work
 * after I/O does: on resume the next turn runs expired timers before polling.
 */
async function answerWhileBlocked ({ child, got }: ChildPeer, id: string, until: number): Promise<void> {
  await waitFor(`the peer to hold request ${id}`, () => got.has(id))
  child.stdin!.write(`go ${id}\n`)
  await new Promise(resolve => setImmediate(resolve))
  blockFor(until + 1_000 - performance.now())
}

describe('wire deadlines while this process is blocked, against a peer in another process', () => {
  let caller: Swarm
  let remote: ChildPeer
  const named = { name: () => 'wire-peer', state: async () => undefined }

  beforeAll(async () => {
    caller = await startSwarm('wakeful-caller')
    remote = await spawnPeer('wire-peer', caller)
  })

  afterAll(async () => {
    remote?.child.kill('SIGKILL')
    await caller?.stop()
  })

  function outbound (acceptTimeoutMs: number, idleTimeoutMs: number): OutboundInit {
    return { components: libp2pComponents(caller), protocol: PEER_PROTOCOL, maxFrameBytes: 64 * 1024, acceptTimeoutMs, idleTimeoutMs, runOnLimitedConnection: true, describePeer: named }
  }

  it('reads an `accepted` that arrived while the process was blocked past the accept deadline', async () => {
    const started = performance.now()
    const opening = OutboundExchange.open(outbound(1_000, 60_000), remote.peer, { type: 'ask', id: 'accept-1', mode: 'hold-accept' }, AbortSignal.timeout(60_000))
    await answerWhileBlocked(remote, 'accept-1', started + 1_000)
    const { exchange, answer } = await opening
    expect(answer).toMatchObject({ type: 'accepted', id: 'accept-1' })
    expect(await exchange.finish(['result'], AbortSignal.timeout(60_000))).toMatchObject({ type: 'result', text: 'done' })
  })

  it('reads a result that arrived while the process was blocked past the idle deadline', async () => {
    const { exchange } = await OutboundExchange.open(outbound(60_000, 1_000), remote.peer, { type: 'ask', id: 'idle-1', mode: 'hold-result' }, AbortSignal.timeout(60_000))
    const started = performance.now()
    const finishing = exchange.finish(['result'], AbortSignal.timeout(60_000))
    await answerWhileBlocked(remote, 'idle-1', started + 1_000)
    expect(await finishing).toMatchObject({ type: 'result', id: 'idle-1', text: 'done' })
  })

  it('still refuses a peer that never answers, by name, after the accept deadline', async () => {
    const err = await OutboundExchange.open(outbound(300, 60_000), remote.peer, { type: 'ask', id: 'silent-1', mode: 'hold-accept' }, AbortSignal.timeout(60_000)).catch(e => e)
    expect(err).toBeInstanceOf(RefusedError)
    expect(err.code).toBe('accept-timeout')
    expect(err.message).toBe('wire-peer did not answer within 300 ms')
  })

  it('still cuts a peer that goes silent after accepting, by name, after the idle deadline', async () => {
    const { exchange } = await OutboundExchange.open(outbound(60_000, 300), remote.peer, { type: 'ask', id: 'silent-2', mode: 'hold-result' }, AbortSignal.timeout(60_000))
    const err = await exchange.finish(['result'], AbortSignal.timeout(60_000)).catch(e => e)
    expect(err).toBeInstanceOf(IdleTimeoutError)
    expect(err.message).toBe('no frame from wire-peer for 300 ms; it may be frozen or unreachable')
  })

  it('leaves no wire timer and no listener behind after many requests', async () => {
    // Every timer the wire layer creates is tracked from its creation until it is cleared or has run.
    const wireTimers = new Map<number, string>()
    const hook = createHook({
      init (asyncId, type) {
        if (type !== 'Timeout') return
        const stack = new Error().stack ?? ''
        if (stack.includes('/src/services/wire/')) wireTimers.set(asyncId, stack)
      },
      destroy (asyncId) { wireTimers.delete(asyncId) }
    })
    const operation = new AbortController()
    hook.enable()
    try {
      for (let i = 0; i < 200; i++) {
        const { exchange } = await OutboundExchange.open(outbound(15_000, 60_000), remote.peer, { type: 'ask', id: `many-${i}`, mode: 'progress', progress: 5 }, operation.signal)
        const progress: Frame[] = []
        await exchange.finish(['result'], operation.signal, frame => progress.push(frame))
        expect(progress).toHaveLength(5)
      }
      // Closing streams ends with timers of its own; wait for those to finish (not a sleep: the condition).
      await waitFor('the wire timers of finished requests to end', () => wireTimers.size === 0, { timeoutMs: 30_000 })
    } finally {
      hook.disable()
    }
    expect([...wireTimers.values()]).toEqual([])
    expect(getEventListeners(operation.signal, 'abort')).toHaveLength(0)
  })
})

describe('the heartbeat\'s check while this process is blocked, against a peer in another process', () => {
  let caller: Swarm
  let remote: ChildPeer
  let heartbeat: Heartbeat

  beforeAll(async () => {
    caller = await startSwarm('check-caller')
    remote = await spawnPeer('wire-peer', caller)
    // Not started: no periodic beat pings the peer, only the checks below (1 s budget each).
    heartbeat = new Heartbeat(caller, { intervalMs: 250, maxMissed: 4 })
  })

  afterAll(async () => {
    heartbeat?.stop()
    remote?.child.kill('SIGKILL')
    await caller?.stop()
  })

  it('takes a ping answer that arrived while the process was blocked past the check\'s deadline: the peer is alive', async () => {
    const started = performance.now()
    const checking = heartbeat.check(remote.peer)
    await answerWhileBlocked(remote, 'ping-1', started + 1_000)
    expect(await checking).toBe(true)
    expect(heartbeat.checking).toBe(0)
  })

  it('still reports a peer that never answers as not reached, after the deadline', async () => {
    const checking = heartbeat.check(remote.peer)
    // It reached the peer, which holds its answer: silence, not a failed dial, is what the check gives up on.
    await waitFor('the peer to hold ping-2', () => remote.got.has('ping-2'))
    expect(await checking).toBe(false)
  })
})

describe('model proxy deadlines while this process is blocked, against a host in another process', () => {
  let caller: Swarm
  let host: ChildPeer
  let models: LocalModels
  const hosting: ModelStreamProtocol[] = []

  beforeAll(async () => {
    caller = await startSwarm('wakeful-model-caller')
    models = new LocalModels({ models: [], logger: caller.logger })
    host = await spawnPeer('model-host', caller)
  })

  afterAll(async () => {
    host?.child.kill('SIGKILL')
    await Promise.all(hosting.map(async p => { await p.stop() }))
    await caller?.stop()
  })

  /** The caller's side, naming the host as the cluster view would. */
  function calling (answerTimeoutMs: number, idleTimeoutMs: number): ModelStreamProtocol {
    const protocol = new ModelStreamProtocol(libp2pComponents(caller), {
      models, answerTimeoutMs, idleTimeoutMs, describePeer: { name: () => 'model-host', state: async () => undefined }
    })
    hosting.push(protocol)
    return protocol
  }

  const ask = (id: string, mode: string): ModelRequestFrame => ({ type: 'model', model: 'm', route: 'chat/completions', body: { stream: true, messages: [{ role: 'user', content: `${id} ${mode}` }] } })
  const text = async (body: AsyncIterable<Uint8Array>): Promise<string> => {
    let all = ''
    for await (const bytes of body) all += new TextDecoder().decode(bytes)
    return all
  }

  it('reads a host\'s first answer that arrived while the process was blocked past the answer deadline', async () => {
    const started = performance.now()
    const asking = calling(1_000, 60_000).request(host.peer, ask('first-1', 'hold-headers'), AbortSignal.timeout(60_000))
    await answerWhileBlocked(host, 'first-1', started + 1_000)
    const answer = await asking
    expect(answer.status).toBe(200)
    expect(await text(answer.body)).toMatch(/"content":"one"[\s\S]*"content":" two"[\s\S]*\[DONE\]/)
  })

  it('reads a chunk that arrived while the process was blocked past the idle deadline', async () => {
    const answer = await calling(60_000, 1_000).request(host.peer, ask('body-1', 'hold-rest'), AbortSignal.timeout(60_000))
    const chunks = answer.body[Symbol.asyncIterator]()
    expect(new TextDecoder().decode((await chunks.next()).value)).toContain('"content":"one"')
    const started = performance.now()
    const rest = text({ [Symbol.asyncIterator]: () => chunks })
    await answerWhileBlocked(host, 'body-1', started + 1_000)
    expect(await rest).toMatch(/"content":" two"[\s\S]*\[DONE\]/)
  })

  it('still gives up on a host that never answers, naming it, after the answer deadline', async () => {
    const err = await calling(300, 60_000).request(host.peer, ask('silent-3', 'hold-headers'), AbortSignal.timeout(60_000)).catch(e => e)
    expect(err).toBeInstanceOf(RefusedError)
    expect(err.code).toBe('answer-timeout')
    expect(err.message).toBe('model-host did not start answering within 300 ms')
  })

  it('still cuts an answer whose host fell silent, naming it, after the idle deadline', async () => {
    const answer = await calling(60_000, 300).request(host.peer, ask('silent-4', 'hold-rest'), AbortSignal.timeout(60_000))
    const err = await text(answer.body).catch(e => e)
    expect(err.message).toBe('the answer from model-host was cut before its end: no frame from model-host for 300 ms; it may be frozen or unreachable')
  })

  it('leaves no deadline timer and no listener behind after many requests', async () => {
    const timers = new Map<number, string>()
    const hook = createHook({
      init (asyncId, type) {
        if (type !== 'Timeout') return
        const stack = new Error().stack ?? ''
        // The wire's and the model protocol's own; the kept-stream pool's idle timers are its business.
        if (/\/src\/services\/(wire|model-proxy)\//.test(stack) && !stack.includes('stream-pool')) timers.set(asyncId, stack)
      },
      destroy (asyncId) { timers.delete(asyncId) }
    })
    const client = new AbortController()
    const protocol = calling(60_000, 60_000)
    hook.enable()
    try {
      for (let i = 0; i < 100; i++) {
        const answer = await protocol.request(host.peer, ask(`many-${i}`, 'whole'), client.signal)
        expect(await text(answer.body)).toContain('[DONE]')
      }
      await waitFor('the deadline timers of finished requests to end', () => timers.size === 0, { timeoutMs: 30_000 })
    } finally {
      hook.disable()
    }
    expect([...timers.values()]).toEqual([])
    expect(getEventListeners(client.signal, 'abort')).toHaveLength(0)
  })
})

describe('card snapshot deadlines while this process is blocked, against a peer in another process', () => {
  const swarms: Swarm[] = []
  const started: CardSnapshots[] = []
  let asker: Swarm
  let remote: ChildPeer
  const quiet = { info: () => {}, warn: () => {} }
  // The view checks cards as a node's does; heartbeats play no part in a snapshot.
  const noHeartbeat = { get: () => undefined, check: async () => true } as unknown as Heartbeat

  function view (swarm: Swarm): ClusterView {
    const self: Card = {
      v: CARD_VERSION, kind: 'card', nodeId: 'asker', peerId: swarm.peerId.toString(), version: 'test', seq: 1, intervalMs: 600_000,
      addresses: [], agents: [], models: [], tags: [], toolProxy: { enabled: false, allow: [], deny: [] }, links: []
    }
    return new ClusterView(swarm, noHeartbeat, { current: self }, 600_000)
  }

  /** The asker's side, naming the peer as the cluster view would; a fresh view, so the peer's card is new to it. */
  function snapshots (swarm: Swarm, timeoutMs: number): CardSnapshots {
    return cardSnapshots({ swarm, view: view(swarm), ownCard: async () => undefined, isGossipPeer: () => false, nameOf: () => 'card-peer', log: quiet }, { timeoutMs })
  }

  beforeAll(async () => {
    asker = await startSwarm('card-asker')
    swarms.push(asker)
    remote = await spawnPeer('card-peer', asker)
  })

  afterAll(async () => {
    remote?.child.kill('SIGKILL')
    await Promise.all(started.map(async s => { await s.stop() }))
    await Promise.all(swarms.map(async s => { await s.stop() }))
  })

  it('takes a snapshot whose answer arrived while the process was blocked past the deadline', async () => {
    const begun = performance.now()
    const taking = snapshots(asker, 1_000).fetch(remote.peer, { since: 1 })
    await answerWhileBlocked(remote, '1', begun + 1_000)
    expect(await taking).toMatchObject({ cards: 1, accepted: 1, refused: 0 })
  })

  it('still fails on a peer that never answers, naming it, after the deadline', async () => {
    const err = await snapshots(asker, 300).fetch(remote.peer, { since: 2 }).catch(e => e)
    expect(err).toBeInstanceOf(CardSnapshotTimeoutError)
    expect(err.message).toBe('the card snapshot from card-peer did not end within 300 ms')
  })

  it('leaves no deadline timer and no listener behind after many exchanges, on either end', async () => {
    // Both ends in this process: the asker also takes snapshots from a second node here, whose serving end is under test too.
    const server = await startSwarm('card-server')
    swarms.push(server)
    const serving = snapshots(server, 60_000)
    const asking = snapshots(asker, 60_000)
    for (const s of [serving, asking]) { await s.start(); started.push(s) }
    await asker.dial(server.getMultiaddrs()[0]!)
    const timers = new Map<number, string>()
    const hook = createHook({
      init (asyncId, type) {
        if (type !== 'Timeout') return
        const stack = new Error().stack ?? ''
        if (/\/src\/services\/(wire|cluster)\//.test(stack)) timers.set(asyncId, stack)
      },
      destroy (asyncId) { timers.delete(asyncId) }
    })
    const caller = new AbortController()
    hook.enable()
    try {
      for (let i = 0; i < 100; i++) {
        expect(await asking.fetch(remote.peer, { signal: caller.signal })).toMatchObject({ cards: 1, refused: 0 })
        // the server's answer is the server's own card: none, as it has not published; the end frame alone
        expect(await asking.fetch(server.peerId)).toMatchObject({ cards: 0, refused: 0 })
      }
      await waitFor('the deadline timers of finished snapshots to end', () => timers.size === 0, { timeoutMs: 30_000 })
    } finally {
      hook.disable()
    }
    expect([...timers.values()]).toEqual([])
    // The services' own stop signals live as long as the node: a listener per exchange left on them would pile up.
    for (const s of [serving, asking]) {
      expect(getEventListeners((s as unknown as { controller: AbortController }).controller.signal, 'abort')).toHaveLength(0)
    }
  })
})
