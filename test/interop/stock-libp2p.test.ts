/**
 * A libp2p tool outside clawmatrix joins the gate: a stock js-libp2p node,
 * built only from public libp2p packages (nothing from src/), with the Noise
 * prologue derived from the secret as docs/inspect.md describes, talks to a
 * clawmatrix node running as a child process. Without the secret it is refused.
 */
import { createHmac } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gossipsub, type GossipsubMessage } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { ping } from '@libp2p/ping'
import { lpStream } from '@libp2p/utils'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runCli, type CliProcess } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import type { IdentifyResult } from '@libp2p/interface'

const SECRET = 'interop-secret-5f0c2a9e1b7d4c3a'
const ANNOUNCE_TOPIC = '/clawmatrix/announce/1.0.0'
const VIEW_PROTOCOL = '/clawmatrix/view/1.0.0'

/** What clawmatrix's gate mixes into every Noise handshake: HMAC-SHA256(secret, "clawmatrix/gate/v1"). */
function prologueFor (secret: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret).update('clawmatrix/gate/v1').digest())
}

async function stockNode (prologueBytes?: Uint8Array) {
  return createLibp2p({
    transports: [webSockets()],
    connectionEncrypters: [noise(prologueBytes == null ? {} : { prologueBytes })],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true })
    }
  })
}

let dir: string
let child: CliProcess
let wsAddress: string
let statusUrl: string
const stock: Libp2p[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clawmatrix-interop-'))
  const config = join(dir, 'office.json')
  await writeFile(config, JSON.stringify({
    nodeId: 'office',
    listen: true,
    listenHost: '127.0.0.1',
    listenPort: 0,
    proxyPort: 0,
    tags: ['office'],
    agents: [{ id: 'coder', description: 'writes code', tags: ['dev'] }],
    heartbeat: { intervalMs: 2000 }
  }))
  child = runCli(['node', '--config', config, '--state-dir', join(dir, 'state')], { CLAWMATRIX_SECRET: SECRET })
  const [line] = await child.waitForOutput(/started: .*status at http:\/\/127\.0\.0\.1:\d+\/clawmatrix\/status/)
  wsAddress = line.match(/(\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/\w+)/)![1]!
  statusUrl = line.match(/(http:\/\/127\.0\.0\.1:\d+)\/clawmatrix\/status/)![1]!
})

afterEach(async () => {
  await Promise.all(stock.splice(0).map(async node => { await node.stop() }))
})

afterAll(async () => {
  await child?.stop()
  await rm(dir, { recursive: true, force: true })
})

async function connectionsOfTheNode (): Promise<unknown[]> {
  const res = await fetch(`${statusUrl}/clawmatrix/peers`)
  return ((await res.json()) as { connections: unknown[] }).connections
}

describe('a stock js-libp2p node', () => {
  it('with the prologue: connects, runs identify and ping, reads the announcements and the view', async () => {
    const node = await stockNode(prologueFor(SECRET))
    stock.push(node)
    const identified = new Promise<IdentifyResult>(resolve => {
      node.addEventListener('peer:identify', event => { resolve(event.detail) }, { once: true })
    })
    const cards: Array<{ card: any, from: string }> = []
    node.services.pubsub.addEventListener('gossipsub:message', (event: CustomEvent<GossipsubMessage>) => {
      const { msg } = event.detail
      if (msg.topic !== ANNOUNCE_TOPIC || msg.type !== 'signed') return
      cards.push({ card: JSON.parse(new TextDecoder().decode(msg.data)), from: msg.from.toString() })
    })
    node.services.pubsub.subscribe(ANNOUNCE_TOPIC)

    const connection = await node.dial(multiaddr(wsAddress))
    const peerId = connection.remotePeer.toString()
    expect(wsAddress).toContain(peerId)

    const id = await identified
    expect(id.agentVersion).toMatch(/^clawmatrix\/\S+ \(node=office\)$/)
    expect(id.protocols).toEqual(expect.arrayContaining(['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/meshsub/1.2.0', VIEW_PROTOCOL]))
    expect(await node.services.ping.ping(connection.remotePeer)).toBeGreaterThanOrEqual(0)

    // The node publishes its card when a peer subscribes, and again every interval.
    const { card, from } = await waitFor('a card from the clawmatrix node', () => cards.find(c => c.card.kind === 'card'))
    expect(from).toBe(peerId)
    expect(card).toMatchObject({ v: 1, kind: 'card', nodeId: 'office', peerId, tags: ['office'], agents: [{ id: 'coder', description: 'writes code', tags: ['dev'] }] })
    expect(card.addresses).toContain(wsAddress)

    // The view protocol: one length-prefixed JSON request, one length-prefixed JSON answer.
    const stream = await node.dialProtocol(connection.remotePeer, VIEW_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(new TextEncoder().encode('{}'))
    const view = JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray()))
    await stream.close()
    expect(view).toMatchObject({ nodeId: 'office', peerId })
    expect(view.nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual(['office'])

    expect(await connectionsOfTheNode()).toHaveLength(1)
  })

  it('without the secret, or with a wrong one, is refused at the handshake', async () => {
    for (const prologue of [undefined, prologueFor('not-the-cluster-secret-0123')]) {
      const node = await stockNode(prologue)
      stock.push(node)
      let identified = false
      node.addEventListener('peer:identify', () => { identified = true })
      await expect(node.dial(multiaddr(wsAddress))).rejects.toMatchObject({ name: 'EncryptionFailedError' })
      expect(node.getConnections()).toEqual([])
      expect(identified).toBe(false)
    }
    expect(await connectionsOfTheNode()).toEqual([])
    expect(child.output()).not.toContain(SECRET)
  })
})
