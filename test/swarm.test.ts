import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { backoffDelay } from '../src/node/peer-dialer.js'
import { testNodes } from './helpers/nodes.js'
import { freePort } from './helpers/ports.js'
import { waitFor } from './helpers/wait.js'
import type { NodeStatus } from '../src/services/status.js'

const nodes = testNodes()
afterEach(async () => { await nodes.cleanup() })

async function httpStatus (url: string): Promise<NodeStatus> {
  const res = await fetch(`${url}/clawmatrix/status`)
  expect(res.status).toBe(200)
  return await res.json() as NodeStatus
}

describe('swarm', () => {
  it('a listener and three dial-out nodes connect, and status shows each link', async () => {
    const hub = await nodes.start({ nodeId: 'hub', listen: true })
    const members = await Promise.all(['a', 'b', 'c'].map(async nodeId =>
      nodes.start({ nodeId, peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })))

    const hubStatus = await waitFor('hub to see a, b and c', async () => {
      const status = await httpStatus(hub.node.http.url)
      return status.peers.length === 3 && status.peers.every(p => p.nodeId != null) ? status : undefined
    })
    expect(hubStatus.nodeId).toBe('hub')
    expect(hubStatus.peerId).toBe(hub.node.peerId.toString())
    expect(hubStatus.peers.map(p => [p.nodeId, p.direction, p.relayed])).toEqual([
      ['a', 'inbound', false], ['b', 'inbound', false], ['c', 'inbound', false]
    ])

    const aStatus = await httpStatus(members[0]!.node.http.url)
    expect(aStatus.listenAddresses.every(a => a.includes('p2p-circuit'))).toBe(true) // no listener of its own
    expect(aStatus.peers).toMatchObject([{ nodeId: 'hub', peerId: hub.node.peerId.toString(), direction: 'outbound' }])
    expect(aStatus.configuredPeers).toMatchObject([{ nodeId: 'hub', state: 'connected', peerId: hub.node.peerId.toString() }])
    expect(JSON.stringify(hubStatus) + JSON.stringify(aStatus)).not.toContain('test-secret')
  })

  it('refuses a wrong-secret node: it never connects and never shows in any status', async () => {
    const hub = await nodes.start({ nodeId: 'hub', listen: true })
    const member = await nodes.start({ nodeId: 'member', peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    const intruder = await nodes.start({
      nodeId: 'intruder',
      secret: 'not-the-cluster-secret-at-all-42',
      peers: [{ nodeId: 'hub', url: hub.wsAddress() }],
      reconnect: { minDelayMs: 50, maxDelayMs: 200 }
    })

    // The intruder keeps failing; each failure is recorded by its dialer.
    await waitFor('three refused attempts', () => intruder.node.dialer.list()[0]!.attempts >= 3 && intruder.node.dialer.list()[0]!.lastError)
    await expect(intruder.node.swarm.dial(multiaddr(hub.wsAddress()))).rejects.toThrow()

    await waitFor('member to be connected', () => hub.node.swarm.getPeers().length === 1)
    const hubStatus = await httpStatus(hub.node.http.url)
    expect(hubStatus.peers.map(p => p.peerId)).toEqual([member.node.peerId.toString()])
    expect(intruder.node.swarm.getPeers()).toEqual([])
    expect(hub.log.lines.join('\n')).not.toContain(intruder.node.peerId.toString())
  })

  it('wrong-secret dialers cannot starve legitimate joins', async () => {
    const hub = await nodes.start({ nodeId: 'hub', listen: true })
    const intruders = await Promise.all(Array.from({ length: 4 }, async (_, i) =>
      nodes.start({ nodeId: `intruder${i}`, secret: `wrong-secret-number-${i}-xyzabc` })))
    const target = multiaddr(hub.wsAddress())
    // 40 refused dials in flight while 5 members join.
    const flood = intruders.flatMap(i => Array.from({ length: 10 }, async () => i.node.swarm.dial(target).then(() => 'connected', () => 'refused')))
    const members = await Promise.all(Array.from({ length: 5 }, async (_, i) =>
      nodes.start({ nodeId: `m${i}`, peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })))
    expect(new Set(await Promise.all(flood))).toEqual(new Set(['refused']))
    await waitFor('all members connected', () => hub.node.swarm.getPeers().length === members.length)
  })

  it('a restarted node keeps its peer id, and its key file is private', async () => {
    const first = await nodes.start({ nodeId: 'keeper' })
    const peerId = first.node.peerId.toString()
    await first.node.stop()
    const second = await nodes.start({ nodeId: 'keeper' }, first.stateDir)
    expect(second.node.peerId.toString()).toBe(peerId)
    expect((await stat(join(first.stateDir, 'peer-key'))).mode & 0o777).toBe(0o600)
  })

  it('reaches a configured peer that comes up late, through backoff', async () => {
    const port = await freePort()
    const early = await nodes.start({
      nodeId: 'early',
      peers: [{ nodeId: 'late', url: `ws://127.0.0.1:${port}` }],
      reconnect: { minDelayMs: 50, maxDelayMs: 400 }
    })
    await waitFor('a few failed attempts', () => early.node.dialer.list()[0]!.attempts >= 3)
    expect(early.node.dialer.list()[0]).toMatchObject({ state: expect.stringMatching(/waiting|dialing/), lastError: expect.any(String) })

    const late = await nodes.start({ nodeId: 'late', listen: true, listenPort: port })
    await waitFor('early to connect to late', () => early.node.dialer.list()[0]!.state === 'connected')
    expect(early.node.swarm.getPeers().map(String)).toEqual([late.node.peerId.toString()])

    // When the peer goes away and comes back, the dialer reconnects by itself.
    await late.node.stop()
    await waitFor('early to notice', () => early.node.swarm.getPeers().length === 0)
    const again = await nodes.start({ nodeId: 'late', listen: true, listenPort: port }, late.stateDir)
    await waitFor('early to reconnect', () => early.node.swarm.getPeers().some(p => p.equals(again.node.peerId)))
  })

  it('backoff doubles from the minimum to the maximum, with jitter in the upper half', () => {
    const init = { minDelayMs: 1000, maxDelayMs: 60_000 }
    expect([0, 1, 2, 5, 6, 20].map(n => backoffDelay(n, init, () => 1))).toEqual([1000, 2000, 4000, 32000, 60000, 60000])
    expect([0, 1, 6].map(n => backoffDelay(n, init, () => 0))).toEqual([500, 1000, 30000])
  })

  it('asks for the bearer token on every route when one is set', async () => {
    const guarded = await nodes.start({ nodeId: 'guarded', proxyToken: 'tok-0123456789' })
    const url = `${guarded.node.http.url}/clawmatrix/status`
    expect((await fetch(url)).status).toBe(401)
    expect((await fetch(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
    expect((await fetch(url, { headers: { authorization: 'Bearer tok-0123456789' } })).status).toBe(200)
    expect((await fetch(`${guarded.node.http.url}/clawmatrix/tool`, { method: 'POST', body: '{}' })).status).toBe(401)
    // The mesh page's shell holds no data and is open; what it fetches is not.
    expect((await fetch(`${guarded.node.http.url}/clawmatrix/`)).status).toBe(200)
    expect((await fetch(`${guarded.node.http.url}/clawmatrix/mesh`)).status).toBe(401)
  })

  it('names the port when a bind fails', async () => {
    const hub = await nodes.start({ nodeId: 'hub', listen: true })
    const port = Number(hub.wsAddress().match(/\/tcp\/(\d+)\//)![1])
    await expect(nodes.start({ nodeId: 'clash', listen: true, listenPort: port }))
      .rejects.toThrow(`cannot listen on 127.0.0.1:${port} (listenPort): the port is already in use by another process`)
    const proxyPort = Number(new URL(hub.node.http.url).port)
    await expect(nodes.start({ nodeId: 'clash2', proxyPort }))
      .rejects.toThrow(`cannot serve HTTP on 127.0.0.1:${proxyPort} (proxyPort): the port is already in use by another process`)
  })
})
