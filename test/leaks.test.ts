/**
 * Every connection a node closes releases its socket: the process's open
 * descriptors come back to where they were after members vanish silently
 * (SIGSTOP: the kernel keeps their sockets open), are reset, or leave
 * gracefully. Counted in this process with /proc/self/fd, on both ends of
 * the WebSocket transport: the listener (a relay here, `ws` underneath) and
 * the dialer (a member here, Node's WebSocket underneath).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CLI } from './helpers/cli.js'
import { openDescriptors, tcpDescriptors } from './helpers/descriptors.js'
import { SECRET, testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

let dir: string
const nodes = testNodes()
const children: ChildProcess[] = []

beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-leaks-')) })
afterEach(async () => {
  await Promise.all(children.splice(0).map(async child => {
    if (child.exitCode != null || child.signalCode != null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }))
  await nodes.cleanup()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

/** Liveness in seconds (a loaded machine still answers a ping within 1 s), and no redial for the length of a test: a vanished peer stays gone. */
const HEARTBEAT = { intervalMs: 1_000, maxMissed: 2 }
const NO_REDIAL = { minDelayMs: 600_000, maxDelayMs: 600_000 }

/**
 * A `clawmatrix node` process. Its output goes to a file, not a pipe: a pipe
 * would be a descriptor of this process, and the children outlive the counts.
 */
async function spawnNode (nodeId: string, config: Record<string, unknown>): Promise<{ child: ChildProcess, output: () => string }> {
  const file = join(dir, `${nodeId}.json`)
  await writeFile(file, JSON.stringify({ nodeId, secret: SECRET, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, ...config }))
  const logFile = join(dir, `${nodeId}.log`)
  const log = openSync(logFile, 'w')
  const child = spawn(process.execPath, [CLI, 'node', '--config', file, '--state-dir', join(dir, nodeId)], { stdio: ['ignore', log, log] })
  closeSync(log)
  children.push(child)
  return { child, output: () => readFileSync(logFile, 'utf8') }
}

/** Members that dial `relay` and are seen by it. */
async function members (relay: TestNode, names: string[], extra: Record<string, unknown> = {}): Promise<ChildProcess[]> {
  const started = await Promise.all(names.map(async nodeId => spawnNode(nodeId, {
    peers: [{ nodeId: 'relay', url: relay.wsAddress() }], heartbeat: { intervalMs: 60_000, maxMissed: 3 }, reconnect: NO_REDIAL, ...extra
  })))
  await waitFor(`the relay to see ${names.join(', ')}`, () => relay.node.swarm.getPeers().length === names.length, { timeoutMs: 60_000 })
    .catch(err => { throw new Error(`${err.message}; member output:\n${started.map(s => s.output()).join('\n')}`) })
  return started.map(s => s.child)
}

/**
 * Waits until the descriptors are back to `baseline`, plus one for each
 * connection `node` still has open over a socket of its own: a member may
 * come back (its mesh connector redials), and then its socket is owned.
 */
async function descriptorsBackTo (baseline: number, node: TestNode, what: string): Promise<void> {
  const owned = (): number => node.node.swarm.getConnections().filter(c => !c.remoteAddr.toString().includes('/p2p-circuit')).length
  try {
    await waitFor(`descriptors back to ${baseline} ${what}`, () => openDescriptors() <= baseline + owned(), { timeoutMs: 20_000 })
  } catch (err: any) {
    throw new Error(`${err.message}: ${openDescriptors()} open, ${owned()} connections; TCP: ${tcpDescriptors().join(', ')}`)
  }
}

async function startRelay (): Promise<{ relay: TestNode, baseline: number }> {
  const relay = await nodes.start({ nodeId: 'relay', listen: true, heartbeat: HEARTBEAT })
  return { relay, baseline: openDescriptors() }
}

describe('sockets of closed connections (listener side)', { timeout: 150_000 }, () => {
  it('a member that goes silent: the heartbeat aborts it and its socket is closed', async () => {
    const { relay, baseline } = await startRelay()
    const frozen = await members(relay, ['sleepy-1', 'sleepy-2', 'sleepy-3'])
    expect(openDescriptors()).toBeGreaterThanOrEqual(baseline + 3)

    for (const child of frozen) child.kill('SIGSTOP')
    await waitFor('the relay to drop the frozen members', () => relay.node.swarm.getConnections().length === 0)
    // The frozen processes' kernels keep their ends open: only the relay closing its end frees the descriptor.
    await descriptorsBackTo(baseline, relay, 'after three silent members were dropped')
    expect(relay.log.has(/missed 2 heartbeats; disconnected/)).toBe(true)
  })

  it('a reset of live members closes their sockets', async () => {
    const { relay, baseline } = await startRelay()
    await members(relay, ['reset-1', 'reset-2'])
    for (const connection of relay.node.swarm.getConnections()) connection.abort(new Error('reset by the test'))
    await descriptorsBackTo(baseline, relay, 'after the relay reset two live members')
  })

  it('graceful closes, by the member and by the relay, even to a member that stopped answering', async () => {
    const { relay, baseline } = await startRelay()
    const [leaving, , frozen] = await members(relay, ['leaving', 'closed', 'frozen'])

    // The member stops gracefully (SIGTERM): it closes, the relay sees a close.
    leaving!.kill('SIGTERM')
    await waitFor('the leaving member to go', () => relay.node.swarm.getConnections().length === 2)

    // The relay closes the other two gracefully; one of them cannot answer the close any more.
    frozen!.kill('SIGSTOP')
    await Promise.all(relay.node.swarm.getConnections().map(async c => { await c.close().catch(err => { c.abort(err) }) }))
    await descriptorsBackTo(baseline, relay, 'after graceful closes to a live and a frozen member')
  })
})

describe('sockets of closed connections (dialer side)', { timeout: 150_000 }, () => {
  it('a relay that goes silent: the member aborts it and its socket is closed', async () => {
    const { child, output } = await spawnNode('quiet-relay', { listen: true, heartbeat: { intervalMs: 60_000, maxMissed: 3 } })
    const [address] = await waitFor('the relay to listen', () => output().match(/\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/\w+/))
    const member = await nodes.start({ nodeId: 'member', heartbeat: HEARTBEAT, reconnect: NO_REDIAL })
    const baseline = openDescriptors()

    const { multiaddr } = await import('@multiformats/multiaddr')
    await member.node.swarm.dial(multiaddr(address))
    expect(openDescriptors()).toBeGreaterThan(baseline)
    child.kill('SIGSTOP')
    await waitFor('the member to drop the frozen relay', () => member.node.swarm.getConnections().length === 0)
    await descriptorsBackTo(baseline, member, 'after the member dropped a frozen relay')
  })

  it('a graceful close to a relay that stopped answering', async () => {
    const { child, output } = await spawnNode('mute-relay', { listen: true, heartbeat: { intervalMs: 60_000, maxMissed: 3 } })
    const [address] = await waitFor('the relay to listen', () => output().match(/\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/\w+/))
    const member = await nodes.start({ nodeId: 'member', heartbeat: { intervalMs: 60_000, maxMissed: 3 }, reconnect: NO_REDIAL })
    const baseline = openDescriptors()

    const { multiaddr } = await import('@multiformats/multiaddr')
    const connection = await member.node.swarm.dial(multiaddr(address))
    child.kill('SIGSTOP')
    await connection.close().catch(err => { connection.abort(err) })
    await descriptorsBackTo(baseline, member, 'after a graceful close to a frozen relay')
  })
})
