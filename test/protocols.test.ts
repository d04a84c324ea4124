import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { NoCandidateAcceptedError, RefusedError, RemoteError, StreamCutError } from '../src/services/wire/errors.js'
import { encodeVarint } from '../src/services/wire/frame.js'
import { FrameStream } from '../src/services/wire/frame-stream.js'
import { readUntil } from '../src/services/wire/read-frames.js'
import { startWorkProtocols, type WorkProtocols } from './fixtures/proto-services.js'
import { HandoffProtocol } from '../src/services/protocols/handoff.js'
import { libp2pComponents } from '../src/services/wire/components.js'
import { processAlive, startNode, tempDir, testConfig, TEST_SECRET } from './fixtures/proto-harness.js'
import { waitFor } from './helpers/wait.js'
import type { ClawmatrixNode } from '../src/services/clawmatrix-node.js'
import type { PeerId } from '@libp2p/interface'

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url))
const agentCommand = [process.execPath, join(fixtures, 'proto-agent.mjs')]

interface Member { node: ClawmatrixNode, protocols: WorkProtocols, stateDir: string }

let dir: { path: string, remove(): Promise<void> }
/** The caller. */
let a: Member
/** Runs agents and tools. */
let b: Member
/** A second candidate: has agent "helper" but not "worker"; tool proxy off. */
let c: Member

async function member (nodeId: string, extra: Record<string, unknown>): Promise<Member> {
  const stateDir = join(dir.path, nodeId)
  const node = await startNode(testConfig(nodeId, extra), stateDir)
  const protocols = await startWorkProtocols(node, stateDir, { keepAliveIntervalMs: 200 })
  return { node, protocols, stateDir }
}

beforeAll(async () => {
  dir = await tempDir()
  a = await member('proto-a', {})
  b = await member('proto-b', {
    agents: [{ id: 'worker', command: agentCommand }, { id: 'helper', command: agentCommand }],
    toolProxy: { enabled: true, deny: ['write'], maxOutputBytes: 2000, workdir: dir.path }
  })
  c = await member('proto-c', { agents: [{ id: 'helper', command: agentCommand }] })
  for (const target of [b, c]) await a.node.swarm.dial(target.node.swarm.getMultiaddrs()[0]!)
})

afterAll(async () => {
  for (const m of [a, b, c]) {
    await m?.protocols.stop()
    await m?.node.stop()
  }
  await dir?.remove()
})

const bPeer = (): PeerId => b.node.peerId
const cPeer = (): PeerId => c.node.peerId

describe('hand-off', () => {
  it('runs a command agent and returns its answer, with progress on the way', async () => {
    const progress: string[] = []
    const result = await a.protocols.handoff.handoff(bPeer(), { agent: 'worker', task: 'echo:hello there' }, {
      onProgress: p => progress.push(p.message)
    })
    expect(result).toMatchObject({ status: 'ok', text: 'worker got: hello there' })
    expect(result.peer.equals(bPeer())).toBe(true)
    expect(progress).toContain('thinking about it')
  })

  it('passes the context and the id to the agent', async () => {
    const result = await a.protocols.handoff.handoff(bPeer(), { id: 'ctx-1', agent: 'worker', task: 'context', context: { files: ['a.ts'], depth: 2 } })
    expect(JSON.parse(result.text)).toEqual({ context: { files: ['a.ts'], depth: 2 }, id: 'ctx-1' })
  })

  it('refuses an unknown agent before starting, naming the node', async () => {
    const err = await a.protocols.handoff.handoff(bPeer(), { agent: 'nobody', task: 'echo:x' }).catch(e => e)
    expect(err).toBeInstanceOf(RefusedError)
    expect(err.code).toBe('no-such-agent')
    expect(err.message).toBe('no agent "nobody" on proto-b')
  })

  it('reports a failing agent as an error result with the tail of its stderr', async () => {
    const result = await a.protocols.handoff.handoff(bPeer(), { agent: 'worker', task: 'fail' })
    expect(result.status).toBe('error')
    expect(result.error).toEqual({ code: 'agent-failed', message: 'agent "worker" exited with code 2: step 1 ok\nsomething broke' })
  })

  it('stops the remote run and its process tree when the caller aborts', async () => {
    const pidFile = join(dir.path, 'hang.pids')
    const controller = new AbortController()
    const running = a.protocols.handoff.handoff(bPeer(), { agent: 'worker', task: `hang:${pidFile}` }, {
      signal: controller.signal,
      onProgress: p => { if (p.message === 'started') controller.abort() }
    })
    await expect(running).rejects.toThrow(/abort/i)
    const pids = (await readFile(pidFile, 'utf8')).split(' ').map(Number)
    expect(pids).toHaveLength(2)
    await waitFor('the agent and its child to be killed', () => pids.every(pid => !processAlive(pid)))
    await waitFor('the run to end on proto-b', () => b.protocols.handoff.running === 0)
  })

  it('reports a run that outlives its timeout as "timeout", having stopped it', async () => {
    const pidFile = join(dir.path, 'slow.pids')
    const result = await a.protocols.handoff.handoff(bPeer(), { agent: 'worker', task: `hang:${pidFile}`, timeoutMs: 500 })
    expect(result.status).toBe('timeout')
    const pids = (await readFile(pidFile, 'utf8')).split(' ').map(Number)
    await waitFor('the timed-out agent to be killed', () => pids.every(pid => !processAlive(pid)))
  })

  it('never runs the same id twice: a repeat attaches to the run, or gets its result', async () => {
    const countFile = join(dir.path, 'count.txt')
    const request = { id: 'same-task-1', agent: 'worker', task: `count:${countFile}` }
    const attachedFlags: boolean[] = []
    const first = a.protocols.handoff.handoff(bPeer(), request, { onAccepted: (_p, attached) => attachedFlags.push(attached) })
    await waitFor('the first run to start', async () => (await readFile(countFile, 'utf8').catch(() => '')) !== '')
    const second = a.protocols.handoff.handoff(bPeer(), request, { onAccepted: (_p, attached) => attachedFlags.push(attached) })
    await waitFor('the second request to be accepted', () => attachedFlags.length === 2)
    await writeFile(`${countFile}.release`, '')
    const results = await Promise.all([first, second])
    expect(results.map(r => r.text)).toEqual(['ran once', 'ran once'])
    const third = await a.protocols.handoff.handoff(bPeer(), request, { onAccepted: (_p, attached) => attachedFlags.push(attached) })
    expect(third.text).toBe('ran once')
    expect(attachedFlags).toEqual([false, true, true])
    expect(await readFile(countFile, 'utf8')).toBe('same-task-1\n')

    const conflict = await a.protocols.handoff.handoff(bPeer(), { ...request, task: 'echo:something else' }).catch(e => e)
    expect(conflict.code).toBe('id-conflict')
  })

  it('fails over to the next candidate when one refuses or cannot be reached, before accepting', async () => {
    const gone = await member('proto-gone', { agents: [{ id: 'worker', command: agentCommand }] })
    const gonePeer = gone.node.peerId
    await a.node.swarm.dial(gone.node.swarm.getMultiaddrs()[0]!)
    await gone.protocols.stop()
    await gone.node.stop()
    const accepted: string[] = []
    // c has no "worker"; "gone" is unreachable; b runs it.
    const result = await a.protocols.handoff.handoff([cPeer(), gonePeer, bPeer()], { agent: 'worker', task: 'echo:via failover' }, {
      onAccepted: peer => accepted.push(peer.toString())
    })
    expect(result.text).toBe('worker got: via failover')
    expect(accepted).toEqual([bPeer().toString()])

    const none = await a.protocols.handoff.handoff([cPeer(), gonePeer], { agent: 'worker', task: 'echo:x' }).catch(e => e)
    expect(none).toBeInstanceOf(NoCandidateAcceptedError)
    expect(none.failures.map((f: any) => f.peer)).toEqual([cPeer().toString(), gonePeer.toString()])
    expect(none.failures[0].error.code).toBe('no-such-agent')
  })

  it('waits the accept timeout for a candidate with a successor, and longer for the last one: a slow host is not a gone one', async () => {
    // proto-slow takes 1.5 s to accept (its policy hook answers late, as a host that stalls its thread would)
    const slowDir = join(dir.path, 'proto-slow')
    const node = await startNode(testConfig('proto-slow', { agents: [{ id: 'worker', command: agentCommand }] }), slowDir)
    const protocols = await startWorkProtocols(node, slowDir, { authorize: async () => { await new Promise(resolve => setTimeout(resolve, 1_500)) } })
    try {
      await a.node.swarm.dial(node.swarm.getMultiaddrs()[0]!)
      // a caller on a with a 500 ms accept timeout (its idle timeout: 20 s)
      const caller = new HandoffProtocol(libp2pComponents(a.node.swarm), { nodeId: 'proto-a', runner: { has: () => false, run: async () => ({ text: '' }) }, acceptTimeoutMs: 500, idleTimeoutMs: 20_000 })
      const accepted: string[] = []
      const moved = await caller.handoff([node.peerId, bPeer()], { agent: 'worker', task: 'echo:moved on' }, { onAccepted: peer => accepted.push(peer.toString()) })
      expect(moved.text).toBe('worker got: moved on')
      expect(accepted).toEqual([bPeer().toString()])

      const waited = await caller.handoff(node.peerId, { agent: 'worker', task: 'echo:waited' })
      expect(waited.text).toBe('worker got: waited')
      expect(waited.peer.equals(node.peerId)).toBe(true)
    } finally {
      await protocols.stop()
      await node.stop()
    }
  })

  it('does not fail over once a candidate accepted', async () => {
    const result = await a.protocols.handoff.handoff([bPeer(), cPeer()], { agent: 'helper', task: 'fail' })
    // b accepted and the agent failed: that is the answer, c is never asked.
    expect(result.status).toBe('error')
    expect(result.peer.equals(bPeer())).toBe(true)
  })
})

describe('one-way message', () => {
  it('delivers into the agent\'s inbox once, and says so', async () => {
    const receipt = await a.protocols.send.send(bPeer(), { id: 'msg-1', agent: 'worker', message: 'the build is green', from: 'proto-a/main' })
    expect(receipt).toMatchObject({ id: 'msg-1', duplicate: false })
    const again = await a.protocols.send.send(bPeer(), { id: 'msg-1', agent: 'worker', message: 'the build is green' })
    expect(again.duplicate).toBe(true)
    const lines = (await readFile(join(b.stateDir, 'inbox', 'worker.jsonl'), 'utf8')).trim().split('\n').map(line => JSON.parse(line))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ id: 'msg-1', message: 'the build is green', from: { peerId: a.node.peerId.toString(), label: 'proto-a/main' } })
  })

  it('refuses a message for an unknown agent instead of dropping it', async () => {
    const err = await a.protocols.send.send(bPeer(), { agent: 'nobody', message: 'hello?' }).catch(e => e)
    expect(err).toBeInstanceOf(RefusedError)
    expect(err.code).toBe('no-such-agent')
  })
})

describe('tool proxy', () => {
  it('runs exec remotely and streams its output', async () => {
    const chunks: string[] = []
    const result = await a.protocols.tool.call(bPeer(), { tool: 'exec', params: { command: 'echo out; echo err >&2; exit 4' } }, {
      onOutput: o => chunks.push(`${o.channel}:${o.text}`)
    })
    expect(result).toMatchObject({ status: 'ok', output: { stdout: 'out\n', stderr: 'err\n' }, details: { exitCode: 4, workdir: dir.path } })
    expect(chunks.sort()).toEqual(['stderr:err\n', 'stdout:out\n'])
  })

  it('refuses an unknown tool, a denied tool, and any tool where the proxy is disabled', async () => {
    const unknown = await a.protocols.tool.call(bPeer(), { tool: 'format-disk', params: {} }).catch(e => e)
    expect(unknown).toBeInstanceOf(RefusedError)
    expect(unknown.message).toBe('unknown tool "format-disk" on proto-b; it has edit, exec, read, write')
    const denied = await a.protocols.tool.call(bPeer(), { tool: 'write', params: { path: 'x', content: 'y' } }).catch(e => e)
    expect(denied.code).toBe('denied')
    expect(denied.message).toBe('tool "write" denied by policy on proto-b (toolProxy.deny)')
    const disabled = await a.protocols.tool.call(cPeer(), { tool: 'read', params: { path: 'x' } }).catch(e => e)
    expect(disabled.code).toBe('tool-disabled')
    expect(disabled.message).toBe('tool proxy disabled on proto-c')
  })

  it('cuts output at the executing node\'s maxOutputBytes with a marker', async () => {
    const result = await a.protocols.tool.call(bPeer(), { tool: 'exec', params: { command: 'head -c 50000 /dev/zero | tr "\\0" b' } })
    expect(result.truncated).toEqual({ limitBytes: 2000, shownBytes: 2000, totalBytes: 50000 })
    expect(result.output.stdout).toBe('b'.repeat(2000) + '\n[output truncated by clawmatrix on proto-b: 2000 of 50000 bytes shown; toolProxy.maxOutputBytes is 2000]\n')
  })

  it('kills the remote process tree when the caller cancels mid-exec', async () => {
    const controller = new AbortController()
    const call = a.protocols.tool.call(bPeer(), { tool: 'exec', params: { command: 'sleep 600 & echo $! > tool-bg.pid; echo $$ > tool-sh.pid; echo ready; wait' } }, {
      signal: controller.signal,
      onOutput: o => { if (o.text.includes('ready')) controller.abort() }
    })
    await expect(call).rejects.toThrow(/abort/i)
    const pids = await Promise.all(['tool-sh.pid', 'tool-bg.pid'].map(async f => Number((await readFile(join(dir.path, f), 'utf8')).trim())))
    await waitFor('the remote shell and its background sleep to be killed', () => pids.every(pid => !processAlive(pid)))
  })

  it('closes only the stream that sent a malformed or oversized frame, and keeps serving', async () => {
    for (const [bytes, code] of [[new Uint8Array([5, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b]), 'bad-frame'], [encodeVarint(64 * 1024 * 1024), 'frame-too-large']] as const) {
      const stream = await a.node.swarm.dialProtocol(bPeer(), b.protocols.tool.protocol)
      const frames = new FrameStream(stream)
      stream.send(bytes)
      const err = await readUntil(frames, () => false, { signal: AbortSignal.timeout(10_000), idleTimeoutMs: 10_000, remote: 'proto-b' }).catch(e => e)
      expect(err).toBeInstanceOf(RemoteError)
      expect(err.code).toBe(code)
      await expect(frames.read({ signal: AbortSignal.timeout(10_000) })).rejects.toBeInstanceOf(StreamCutError)
    }
    // A request that is a frame but not a tool request.
    const wrong = await a.node.swarm.dialProtocol(bPeer(), b.protocols.tool.protocol)
    const wrongFrames = new FrameStream(wrong)
    await wrongFrames.write({ type: 'tool', id: 'x', params: {} })
    const err = await readUntil(wrongFrames, () => false, { signal: AbortSignal.timeout(10_000), idleTimeoutMs: 10_000, remote: 'proto-b' }).catch(e => e)
    expect(err.code).toBe('bad-request')
    expect(err.message).toContain('tool request: missing tool')

    const result = await a.protocols.tool.call(bPeer(), { tool: 'read', params: { path: 'hang.pids' } })
    expect(result.status).toBe('ok')
    expect(a.node.swarm.getConnections(bPeer())).toHaveLength(1)
  })
})

describe('an executing node that dies or freezes mid-exec', () => {
  let child: ChildProcess | undefined
  let strayPid: number | undefined

  afterEach(() => {
    if (child?.exitCode == null && child?.signalCode == null) child?.kill('SIGKILL')
    if (strayPid != null && processAlive(strayPid)) process.kill(strayPid, 'SIGKILL')
    child = undefined
    strayPid = undefined
  })

  async function spawnMember (nodeId: string): Promise<PeerId> {
    const stateDir = join(dir.path, nodeId)
    const config = { nodeId, secret: TEST_SECRET, listen: true, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, toolProxy: { enabled: true, workdir: dir.path } }
    child = spawn(process.execPath, [
      '--experimental-transform-types', '--disable-warning=ExperimentalWarning',
      '--import', join(fixtures, 'proto-ts-resolve.mjs'), join(fixtures, 'proto-node.ts'),
      JSON.stringify(config), stateDir
    ], { stdio: ['ignore', 'pipe', 'inherit'] })
    const [line] = await once(createInterface({ input: child.stdout! }), 'line') as [string]
    const { peerId, addresses } = JSON.parse(line) as { peerId: string, addresses: string[] }
    await a.node.swarm.dial(multiaddr(addresses[0]!))
    return peerIdFromString(peerId)
  }

  async function execUntilStarted (peer: PeerId, pidFile: string): Promise<{ call: Promise<unknown> }> {
    let started = false
    const call = a.protocols.tool.call(peer, { tool: 'exec', params: { command: `echo $$ > ${pidFile}; echo started; exec sleep 600` } }, {
      onOutput: o => { if (o.text.includes('started')) started = true }
    })
    call.catch(() => {})
    await waitFor('the remote command to start', () => started)
    strayPid = Number((await readFile(pidFile, 'utf8')).trim())
    return { call }
  }

  it('gives the caller an error, not a hang, when the node is killed', async () => {
    const peer = await spawnMember('proto-killed')
    const { call } = await execUntilStarted(peer, join(dir.path, 'killed.pid'))
    child!.kill('SIGKILL')
    const err = await call.catch(e => e)
    expect(err).toBeInstanceOf(StreamCutError)
  })

  it('gives the caller an error when the node freezes: the heartbeat closes the connection', async () => {
    // Beats every 300 ms, two missed close the connection; the call's own idle timeout (60 s) is far off.
    const caller = await member('proto-watcher', { heartbeat: { intervalMs: 300, maxMissed: 2 } })
    try {
      const peer = await spawnMember('proto-frozen')
      await caller.node.swarm.dial(a.node.swarm.getConnections(peer)[0]!.remoteAddr)
      let started = false
      const pidFile = join(dir.path, 'frozen.pid')
      const call = caller.protocols.tool.call(peer, { tool: 'exec', params: { command: `echo $$ > ${pidFile}; echo started; exec sleep 600` } }, {
        onOutput: o => { if (o.text.includes('started')) started = true }
      })
      call.catch(() => {})
      await waitFor('the remote command to start', () => started)
      strayPid = Number((await readFile(pidFile, 'utf8')).trim())
      child!.kill('SIGSTOP')
      const err = await call.catch(e => e)
      expect(err).toBeInstanceOf(StreamCutError)
    } finally {
      child?.kill('SIGKILL')
      await caller.protocols.stop()
      await caller.node.stop()
    }
  })
})
