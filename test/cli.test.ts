import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runCli, runCliToEnd, type CliProcess } from './helpers/cli.js'
import { SECRET, testNodes } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import type { NodeStatus } from '../src/services/status.js'

let dir: string
const children: CliProcess[] = []
const nodes = testNodes()

beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-cli-')) })
afterEach(async () => {
  await Promise.all(children.splice(0).map(async c => c.stop()))
  await nodes.cleanup()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

function start (args: string[], env: Record<string, string> = {}): CliProcess {
  const child = runCli(args, env)
  children.push(child)
  return child
}

/** The status port and ws address a CLI node prints in its start line. */
async function started (child: CliProcess): Promise<{ statusPort: string, wsAddress?: string }> {
  const [line] = await child.waitForOutput(/started: peer id .*status at http:\/\/127\.0\.0\.1:(\d+)\/clawmatrix\/status/)
  return {
    statusPort: line.match(/127\.0\.0\.1:(\d+)\/clawmatrix/)![1]!,
    wsAddress: line.match(/(\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/\w+)/)?.[1]
  }
}

async function cliStatus (port: string): Promise<NodeStatus> {
  const { code, output } = await runCliToEnd(['status', '--port', port, '--json'])
  expect(code, output).toBe(0)
  return JSON.parse(output)
}

async function writeNodeConfig (nodeId: string, config: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${nodeId}.json`)
  await writeFile(file, JSON.stringify({ nodeId, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, ...config }))
  return file
}

describe('standalone CLI', () => {
  it('`clawmatrix relay` and two `clawmatrix node` processes form a mesh, seen by `clawmatrix status`', async () => {
    const env = { CLAWMATRIX_SECRET: SECRET, DEBUG: 'clawmatrix:*,libp2p:*' }
    const relay = start(['relay', '--listen-host', '127.0.0.1', '--listen-port', '0', '--proxy-port', '0', '--state-dir', join(dir, 'relay')], env)
    const relayInfo = await started(relay)
    const members = await Promise.all(['home', 'office'].map(async nodeId => {
      const config = await writeNodeConfig(nodeId, { peers: [{ nodeId: 'relay', url: relayInfo.wsAddress }] })
      const child = start(['node', '--config', config, '--state-dir', join(dir, nodeId)], env)
      return { nodeId, child, ...await started(child) }
    }))

    const relayStatus = await waitFor('the relay to see both nodes', async () => {
      const status = await cliStatus(relayInfo.statusPort)
      return status.peers.filter(p => p.nodeId != null).length === 2 ? status : undefined
    })
    expect(relayStatus.nodeId).toBe('relay')
    expect(relayStatus.peers.map(p => p.nodeId)).toEqual(['home', 'office'])
    for (const [i, member] of members.entries()) {
      const other = members[1 - i]!.nodeId
      // Neither listens: they learn of each other's cards through the relay, and would connect through it.
      const status = await waitFor(`${member.nodeId} to reach ${other} through the relay`, async () => {
        const s = await cliStatus(member.statusPort)
        return s.cluster.find(n => n.nodeId === other)?.reach === 'relayed' ? s : undefined
      })
      const reach = Object.fromEntries(status.cluster.map(n => [n.nodeId, [n.reach, n.via?.nodeId]]))
      expect(reach).toEqual({ [member.nodeId]: ['self', undefined], relay: ['direct', undefined], [other]: ['relayed', 'relay'] })
      expect(status.peers.find(p => p.nodeId === 'relay')).toMatchObject({ direction: 'outbound', relayed: false })
      // Connections between members are made on demand: none is open until there is work.
      expect(status.cluster.find(n => n.nodeId === other)).toMatchObject({ connected: false })
      expect(status.peers.find(p => p.nodeId === other)).toBeUndefined()
      // Each dial-out node holds a reservation on the relay, so it is reachable through it.
      expect(status.listenAddresses.some(a => a.startsWith(relayInfo.wsAddress!) && a.includes('/p2p-circuit/'))).toBe(true)
    }

    // The human-readable status names every peer.
    const { output } = await runCliToEnd(['status', '--port', relayInfo.statusPort])
    expect(output).toMatch(/connected peers \(2\)/)
    expect(output).toMatch(/home\s+in\s+direct/)

    // A graceful stop is a close, not a timeout: the relay logs the leave without missed heartbeats.
    await members[0]!.child.stop()
    expect(await members[0]!.child.exited).toBe(0)
    await relay.waitForOutput(/node left: home \(left\)/)
    expect(relay.output()).not.toMatch(/missed \d+ heartbeats/)

    // Even with every debug namespace on, the secret appears in no output.
    for (const child of [relay, ...members.map(m => m.child)]) {
      expect(child.output().length).toBeGreaterThan(1000)
      expect(child.output()).not.toContain(SECRET)
    }
  })

  it('drops a peer frozen with SIGSTOP after the missed heartbeats', async () => {
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: { intervalMs: 200, maxMissed: 3 } })
    const config = await writeNodeConfig('frozen', { secret: SECRET, peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    const child = start(['node', '--config', config, '--state-dir', join(dir, 'frozen')])
    await started(child)
    await waitFor('the hub to see the node', () => hub.node.swarm.getPeers().length === 1)
    const frozenPeer = hub.node.swarm.getPeers()[0]!

    child.child.kill('SIGSTOP')
    try {
      await waitFor('the hub to drop the frozen node', () => hub.node.swarm.getPeers().length === 0)
      expect(hub.log.has(new RegExp(`\\(peer id ${frozenPeer.toString()}\\) missed 3 heartbeats; disconnected`))).toBe(true)
      expect((await hub.node.status()).peers).toEqual([])
    } finally {
      child.child.kill('SIGKILL')
    }
  })

  it('`npm start` runs a demo mesh a newcomer can look at', async () => {
    const demo = start(['demo'])
    const [, port] = await demo.waitForOutput(/clawmatrix status --port (\d+)/)
    const status = await cliStatus(port!)
    expect(status.nodeId).toBe('alpha')
    expect(status.peers.map(p => p.nodeId)).toContain('hub')

    // The printed curl streams beta's built-in model through alpha's proxy, over the mesh.
    const [, url, body] = await demo.waitForOutput(/curl -N (http:\/\/\S+\/v1\/chat\/completions) -H 'content-type: application\/json' -d '(.+)'/)
    const response = await fetch(url!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body! })
    expect(response.status).toBe(200)
    expect(response.headers.get('x-clawmatrix-node')).toBe('beta')
    const events = (await response.text()).split('\n\n').filter(e => e !== '').map(e => e.replace(/^data: /, ''))
    expect(events.at(-1)).toBe('[DONE]')
    const words = events.slice(0, -1).map(e => JSON.parse(e).choices[0]?.delta?.content ?? '').join('')
    expect(words).toBe('side other the from hello')

    demo.child.kill('SIGINT')
    expect(await demo.exited).toBe(0)
  })
})
