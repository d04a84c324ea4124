import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config/load.js'
import { clusterSecrets } from '../src/config/schema.js'
import { withJoinedState, type JoinedState } from '../src/membership/index.js'
import { secretFingerprint } from '../src/node/gate.js'
import { formatStatus } from '../src/services/status-format.js'
import { freePort } from './helpers/ports.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import type { NodeStatus } from '../src/services/status.js'

// The rotation procedure of docs/gate.md ("Rotating the secret"), walked through on three real nodes that are
// restarted one at a time with each new config, as an operator would.
const OLD = 'the-old-secret-that-leaked-0a1b2c3d'
const NEW = 'the-new-secret-from-openssl-9f8e7d6c'
const NAMES = ['hub', 'a', 'b'] as const
type Name = typeof NAMES[number]

const nodes = testNodes()
let dir: string
const ports = new Map<Name, number>()
const running = new Map<Name, TestNode>()
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clawmatrix-rotation-'))
  for (const name of NAMES) ports.set(name, await freePort())
})
afterEach(async () => { await nodes.cleanup() })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

/** Each node listens on its own fixed port and keeps the other two as configured peers. */
async function start (name: Name, secrets: { secret: string } | { secrets: string[] }): Promise<TestNode> {
  const node = await nodes.start({
    nodeId: name,
    // testNodes sets a secret of its own unless told otherwise.
    ...('secrets' in secrets ? { secret: undefined } : {}),
    ...secrets,
    listen: true,
    listenPort: ports.get(name),
    peers: NAMES.filter(other => other !== name).map(other => ({ nodeId: other, url: `ws://127.0.0.1:${ports.get(other)}` })),
    heartbeat: { intervalMs: 1000, maxMissed: 10 },
    reconnect: { minDelayMs: 50, maxDelayMs: 500 }
  }, join(dir, name))
  running.set(name, node)
  return node
}

function get (name: Name): TestNode {
  return running.get(name)!
}

/** The open connections between two running nodes, by id. */
function connectionIds (from: Name, to: Name): string[] {
  return get(from).node.swarm.getConnections(get(to).node.peerId).filter(c => c.status === 'open').map(c => c.id)
}

/** Every running node lists the other two and reaches them directly. */
async function connectedEverywhere (): Promise<void> {
  await waitFor('every node to reach the other two directly', () => NAMES.every(name =>
    NAMES.filter(other => other !== name).every(other =>
      get(name).node.view.nodes().find(n => n.nodeId === other)?.reach === 'direct' && connectionIds(name, other).length > 0)), { timeoutMs: 60_000 })
}

async function status (name: Name): Promise<NodeStatus> {
  const res = await fetch(`${get(name).node.http.url}/clawmatrix/status`)
  return res.json() as Promise<NodeStatus>
}

/**
 * Restarts `name` with new secrets while the other two stay up: their own connection is never dropped
 * (the cluster stays connected), and the restarted node is back with both of them.
 */
async function restart (name: Name, secrets: { secret: string } | { secrets: string[] }): Promise<void> {
  const [x, y] = NAMES.filter(other => other !== name) as [Name, Name]
  const between = connectionIds(x, y)
  expect(between.length).toBeGreaterThan(0)
  await get(name).node.stop()
  await start(name, secrets)
  await connectedEverywhere()
  expect(connectionIds(x, y).some(id => between.includes(id)), `${x} <-> ${y} kept their connection while ${name} restarted`).toBe(true)
}

/** The fingerprint of the secret each of `name`'s connections used, by peer node. */
async function secretsUsed (name: Name): Promise<Record<string, string | undefined>> {
  const { peers } = await status(name)
  return Object.fromEntries(peers.map(p => [p.nodeId ?? p.peerId, p.secret?.fingerprint]))
}

describe('secret rotation with overlap', () => {
  it('add the new secret everywhere, switch to it, remove the old: connected throughout, and an old-only node is refused', async () => {
    const oldPrint = secretFingerprint(OLD)
    const newPrint = secretFingerprint(NEW)
    for (const name of NAMES) await start(name, { secret: OLD })
    await connectedEverywhere()
    expect((await status('hub')).secrets).toEqual([oldPrint])

    // 1. Add the new secret second, node by node: connections still use the old one.
    for (const name of NAMES) await restart(name, { secrets: [OLD, NEW] })
    for (const name of NAMES) expect(Object.values(await secretsUsed(name))).toEqual([oldPrint, oldPrint])
    expect((await status('a')).secrets).toEqual([oldPrint, newPrint])
    // `clawmatrix status` shows the list by fingerprint, and each connection's secret by position.
    const text = formatStatus(await status('a'))
    expect(text).toContain(`secrets   #0 ${oldPrint}, #1 ${newPrint}`)
    expect(text).toMatch(/^  hub +(in|out) +direct +#0 /m)

    // 2. Put it first, node by node. A switched node dials with the new secret and still accepts the old.
    await restart('hub', { secrets: [NEW, OLD] })
    // hub dials with its first secret, the new one, which a and b accept as their second; a and b dial with
    // the old one, which hub accepts as its second. Status says which, per connection.
    for (const peer of (await status('hub')).peers) {
      expect(peer.secret, `${peer.nodeId} ${peer.direction}`).toEqual(peer.direction === 'outbound' ? { index: 0, fingerprint: newPrint } : { index: 1, fingerprint: oldPrint })
    }
    await restart('a', { secrets: [NEW, OLD] })
    await restart('b', { secrets: [NEW, OLD] })
    // Every connection now opened since a node switched uses the new secret: status shows it before the old goes.
    await waitFor('every connection on the new secret', async () => {
      for (const name of NAMES) {
        for (const used of Object.values(await secretsUsed(name))) if (used !== newPrint) return false
      }
      return true
    }, { timeoutMs: 30_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(await Promise.all(NAMES.map(async n => secretsUsed(n))))}`)
    })

    // 3. Remove the old secret, node by node.
    for (const name of NAMES) await restart(name, { secret: NEW })
    for (const name of NAMES) {
      expect((await status(name)).secrets).toEqual([newPrint])
      expect(Object.values(await secretsUsed(name))).toEqual([newPrint, newPrint])
    }

    // A node that still has only the old secret is refused, and says so plainly.
    const stale = await nodes.start({
      nodeId: 'stale',
      secret: OLD,
      peers: [{ nodeId: 'hub', url: `ws://127.0.0.1:${ports.get('hub')}` }],
      reconnect: { minDelayMs: 50, maxDelayMs: 500 }
    })
    await waitFor('stale to give up on hub with a reason', () =>
      stale.node.dialer.list().find(p => p.nodeId === 'hub' && p.attempts >= 2 && p.lastError != null), { timeoutMs: 30_000 })
    expect(stale.node.dialer.list()[0]).toMatchObject({ nodeId: 'hub', state: expect.not.stringMatching('connected'), lastError: 'the peer refused this node\'s secret' })
    for (const name of NAMES) expect(get(name).node.view.nodes().map(n => n.nodeId)).not.toContain('stale')
    expect(stale.node.swarm.getConnections()).toEqual([])
    // Nothing of either secret is in any status.
    for (const name of NAMES) expect(JSON.stringify(await status(name))).not.toMatch(/the-old-secret|the-new-secret/)
  })

  it('a joined node whose config lists secrets uses that list instead of the secret its invite installed', () => {
    const joined = { authority: 'ed25519:' + 'A'.repeat(43), secret: OLD, certificate: { nodeId: 'office' } } as unknown as JoinedState
    expect(clusterSecrets(parseConfig(withJoinedState({}, joined)))).toEqual([OLD])
    expect(clusterSecrets(parseConfig(withJoinedState({ secrets: [NEW, OLD] }, joined)))).toEqual([NEW, OLD])
    expect(clusterSecrets(parseConfig(withJoinedState({ secret: NEW }, joined)))).toEqual([NEW])
  })
})
