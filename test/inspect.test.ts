import { createServer } from 'node:net'
import { lpStream } from '@libp2p/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ANNOUNCE_TOPIC } from '../src/services/cluster/card.js'
import { ClawmatrixMetrics, EVENT_LOOP_SAMPLE_MS } from '../src/services/inspect/metrics.js'
import { ViewProtocol } from '../src/services/inspect/view-protocol.js'
import { libp2pComponents } from '../src/services/wire/components.js'
import { VERSION } from '../src/version.js'
import { runCliToEnd } from './helpers/cli.js'
import { SECRET, testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'
import type { InspectReport } from '../src/services/inspect/inspector.js'
import type { MeshReport } from '../src/services/inspect/mesh.js'
import type { PeersReport } from '../src/services/inspect/peers.js'

/** Noise under the one cluster secret, named by its fingerprint (src/node/gate.ts). */
const GATED_NOISE = expect.stringMatching(/^\/clawmatrix\/noise\/1\/[0-9a-f]{16}$/)

const nodes = testNodes()
let hub: TestNode
let alpha: TestNode
let beta: TestNode

/** hub listens and relays; alpha and beta only dial out, so they reach each other through hub. */
beforeAll(async () => {
  hub = await nodes.start({ nodeId: 'hub', listen: true, tags: ['relay'] })
  const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
  alpha = await nodes.start({
    nodeId: 'alpha',
    peers,
    tags: ['home'],
    agents: [{ id: 'coder', description: 'writes code', tags: ['dev'] }],
    toolProxy: { enabled: true, allow: ['read'] }
  })
  beta = await nodes.start({ nodeId: 'beta', peers, tags: ['office'] })
  await waitFor('alpha to reach beta through hub', () => alpha.node.view.nodes().find(n => n.nodeId === 'beta')?.reach === 'relayed')
  // Connections between members are made on demand: these tests inspect a relayed one, so open it.
  await alpha.node.swarm.dial(beta.node.peerId)
  await waitFor('every node to know all three', () => [hub, alpha, beta].every(t => t.node.view.nodes().length === 3))
})
afterAll(async () => { await nodes.cleanup() })

function viewClient (from: TestNode, init: ConstructorParameters<typeof ViewProtocol>[1] = {}): ViewProtocol {
  return new ViewProtocol(libp2pComponents(from.node.swarm), init)
}

async function getJson<T> (node: TestNode, path: string): Promise<T> {
  const res = await fetch(`${node.node.http.url}${path}`)
  expect(res.status, path).toBe(200)
  return res.json() as Promise<T>
}

async function closedPort (): Promise<number> {
  return new Promise(resolve => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => { resolve(port) })
    })
  })
}

describe('the view protocol', () => {
  it('serves a member\'s cluster view, over direct and relayed connections', async () => {
    const fromHub = await viewClient(alpha).fetch(hub.node.peerId)
    expect(fromHub).toMatchObject({ nodeId: 'hub', peerId: hub.node.peerId.toString(), version: VERSION })
    expect(fromHub.nodes.map(n => [n.nodeId, n.reach])).toEqual(hub.node.view.nodes().map(n => [n.nodeId, n.reach]))
    expect(fromHub.nodes.find(n => n.nodeId === 'alpha')?.agents.map(a => a.id)).toEqual(['coder'])

    const fromBeta = await viewClient(alpha).fetch(beta.node.peerId)
    expect(fromBeta.nodeId).toBe('beta')
    expect(fromBeta.nodes.find(n => n.nodeId === 'alpha')?.reach).toBe('relayed')
  })

  it('refuses a view above the caller\'s limit, and a peer that does not answer in time', async () => {
    await expect(viewClient(alpha, { maxViewBytes: 200 }).fetch(hub.node.peerId)).rejects.toThrow(/the view is larger than the 200 byte limit/)
    // A peer that accepts the stream and never answers.
    await beta.node.swarm.handle('/clawmatrix-silent/view/1.0.0', () => {}, { runOnLimitedConnection: true })
    await expect(viewClient(hub, { protocolPrefix: 'clawmatrix-silent', timeoutMs: 300 }).fetch(beta.node.peerId)).rejects.toThrow(/no view within 0.3 s/)
    await expect(viewClient(hub, { protocolPrefix: 'clawmatrix-none' }).fetch(beta.node.peerId)).rejects.toThrow(/does not serve \/clawmatrix-none\/view\/1.0.0/)
    // The node still serves the view.
    expect((await viewClient(alpha).fetch(hub.node.peerId)).nodes).toHaveLength(3)
  })

  it('closes the stream on a malformed or oversized request, not the node', async () => {
    for (const request of [new TextEncoder().encode('not json'), new TextEncoder().encode('[1]'), new Uint8Array(4096).fill(0x20)]) {
      const stream = await alpha.node.swarm.dialProtocol(hub.node.peerId, '/clawmatrix/view/1.0.0')
      const lp = lpStream(stream)
      await lp.write(request)
      // The hub answers nothing and resets the stream.
      await expect(lp.read({ signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
    }
    expect(hub.node.swarm.getPeers().map(String)).toContain(alpha.node.peerId.toString())
    expect((await viewClient(alpha).fetch(hub.node.peerId)).nodeId).toBe('hub')
  })
})

describe('clawmatrix inspect', () => {
  it('shows identify, ping and the cluster view of a member, and never joins the cluster', async () => {
    const { code, output } = await runCliToEnd(['inspect', hub.wsAddress()], { CLAWMATRIX_SECRET: SECRET })
    expect(code, output).toBe(0)
    expect(output).toContain(`peer id     ${hub.node.peerId}`)
    expect(output).toContain(`agent       clawmatrix/${VERSION} (node=hub)`)
    expect(output).toMatch(/ws, direct, \/clawmatrix\/noise\/1\/[0-9a-f]{16}, \/yamux\/1\.0\.0/)
    expect(output).toMatch(/ping {8}\d+ ms/)
    expect(output).toMatch(/protocols .*\/clawmatrix\/view\/1\.0\.0/s)
    expect(output).toContain('cluster as hub sees it (3 nodes)')
    expect(output).toMatch(/alpha\s+direct\s+\d+ ms\s+coder\s+-\s+home\s+read/)
    expect(output).not.toContain(SECRET)

    // ws://host:port and a multiaddr without /p2p work too; --json has it all.
    const port = hub.wsAddress().match(/\/tcp\/(\d+)\//)![1]
    const json = await runCliToEnd(['inspect', `ws://127.0.0.1:${port}`, '--json'], { CLAWMATRIX_SECRET: SECRET })
    expect(json.code, json.output).toBe(0)
    const report = JSON.parse(json.output) as InspectReport
    expect(report).toMatchObject({ peerId: hub.node.peerId.toString(), connection: { transport: 'ws', relayed: false, encryption: GATED_NOISE } })
    expect(report.protocols).toEqual(expect.arrayContaining(['/clawmatrix/view/1.0.0', '/ipfs/id/1.0.0', '/ipfs/ping/1.0.0']))
    expect(report.listenAddresses.some(a => a.includes(`/tcp/${port}/ws`))).toBe(true)
    expect(report.view?.nodes.map(n => n.nodeId).sort()).toEqual(['alpha', 'beta', 'hub'])

    // The inspector left no trace: it hung up and never appeared in any view.
    await waitFor('the inspector to hang up', () => hub.node.swarm.getPeers().length === 2)
    for (const t of [hub, alpha, beta]) expect(t.node.view.nodes()).toHaveLength(3)
  })

  it('says the secret was refused, naming the address and neither secret', async () => {
    const wrong = 'another-secret-0123456789abcdef'
    const { code, output } = await runCliToEnd(['inspect', hub.wsAddress()], { CLAWMATRIX_SECRET: wrong })
    expect(code).toBe(1)
    expect(output).toBe(`clawmatrix: cannot inspect ${hub.wsAddress()}: refused: the node did not accept this secret (the gated Noise handshake failed); check CLAWMATRIX_SECRET\n`)
    expect(output).not.toContain(wrong)
    expect(output).not.toContain(SECRET)
  })

  it('names an unreachable address, and asks for a secret and a valid address', async () => {
    const address = `/ip4/127.0.0.1/tcp/${await closedPort()}/ws`
    const unreachable = await runCliToEnd(['inspect', address], { CLAWMATRIX_SECRET: SECRET })
    expect(unreachable.code).toBe(1)
    expect(unreachable.output).toMatch(new RegExp(`^clawmatrix: cannot inspect ${address}: unreachable: no WebSocket connection`))

    const noSecret = await runCliToEnd(['inspect', hub.wsAddress()], { CLAWMATRIX_SECRET: '' })
    expect(noSecret.output).toMatch(/cannot inspect: set the cluster secret in CLAWMATRIX_SECRET/)
    const badAddress = await runCliToEnd(['inspect', 'http://127.0.0.1:1'], { CLAWMATRIX_SECRET: SECRET })
    expect(badAddress.output).toMatch(/cannot inspect "http:\/\/127.0.0.1:1": scheme http: is not supported; expected ws:\/\/ or wss:\/\//)
    const noAddress = await runCliToEnd(['inspect'], { CLAWMATRIX_SECRET: SECRET })
    expect(noAddress.output).toMatch(/cannot inspect: name one address; usage: clawmatrix inspect/)
    for (const run of [unreachable, noSecret, badAddress, noAddress]) expect(run.output).not.toMatch(/\n\s+at /)
  })
})

describe('clawmatrix peers', () => {
  it('lists live connections with transport, relay, direction and open streams', async () => {
    const port = new URL(alpha.node.http.url).port
    const { code, output } = await runCliToEnd(['peers', '--port', port, '--json'])
    expect(code, output).toBe(0)
    const report = JSON.parse(output) as PeersReport
    expect(report.nodeId).toBe('alpha')
    const toHub = report.connections.find(c => c.nodeId === 'hub')
    const toBeta = report.connections.find(c => c.nodeId === 'beta')
    expect(toHub).toMatchObject({ direction: 'outbound', transport: 'ws', relayed: false, encryption: GATED_NOISE, multiplexer: '/yamux/1.0.0' })
    expect(toBeta).toMatchObject({ transport: 'circuit', relayed: true, via: { nodeId: 'hub', peerId: hub.node.peerId.toString() } })
    // Gossipsub keeps a stream open each way on every connection.
    expect(toHub?.streams.map(s => s.protocol)).toContain('/meshsub/1.2.0')
    expect(toHub?.ageMs).toBeGreaterThan(0)

    const text = await runCliToEnd(['peers', '--port', port])
    // Two members that discover each other at once may hold two relayed connections: the report shows both.
    expect(text.output).toMatch(/^node alpha \(\w+\): \d+ connections/)
    expect(text.output).toMatch(/beta\s+(in|out)\s+circuit\s+relayed via hub/)
    expect(text.output).toMatch(/hub\s+out\s+ws\s+direct/)
    expect(text.output).toMatch(/open streams\n(.*\n)*  hub: .*\/meshsub\/1\.2\.0 \(in, out\)/)
  })

  it('says which port did not answer', async () => {
    const port = await closedPort()
    const { code, output } = await runCliToEnd(['peers', '--port', String(port)])
    expect(code).toBe(1)
    expect(output).toContain(`cannot list peers: no clawmatrix node answered at http://127.0.0.1:${port}/clawmatrix/peers (ECONNREFUSED)`)
  })
})

/** Parses Prometheus text into `name{labels}` -> value. */
function samples (text: string): Map<string, number> {
  const result = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    result.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return result
}

async function metricsOf (node: TestNode): Promise<{ text: string, samples: Map<string, number> }> {
  const res = await fetch(`${node.node.http.url}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  const text = await res.text()
  return { text, samples: samples(text) }
}

describe('GET /metrics', () => {
  it('exposes libp2p\'s series and clawmatrix\'s, per node, for several nodes in one process', async () => {
    const { text, samples: hubSamples } = await metricsOf(hub)
    const libp2pSeries = new Set([...text.matchAll(/^# TYPE (libp2p_\w+)/gm)].map(m => m[1]))
    expect(libp2pSeries.size).toBeGreaterThanOrEqual(20)
    expect(hubSamples.get('libp2p_connection_manager_connections{libp2p_connection_manager_connections="inbound"}')).toBe(2)
    expect(hubSamples.get(`clawmatrix_node_info{node_id="hub",peer_id="${hub.node.peerId}",version="${VERSION}"}`)).toBe(1)
    expect(hubSamples.get('clawmatrix_known_nodes{reach="direct"}')).toBe(2)
    expect(hubSamples.get('clawmatrix_connections{path="direct",direction="inbound"}')).toBe(2)
    expect(hubSamples.get(`clawmatrix_gossipsub_mesh_peers{topic="${ANNOUNCE_TOPIC}"}`)).toBe(2)
    expect(hubSamples.get('clawmatrix_announcements_sent_total{kind="card"}')).toBeGreaterThan(0)
    expect(hubSamples.get('clawmatrix_announcements_received_total{verdict="accepted"}')).toBeGreaterThan(0)

    // Each node has its own registry: alpha reaches beta through the relay, the hub reaches nobody that way.
    await alpha.node.swarm.dial(beta.node.peerId) // on demand: the relayed link exists while used
    const alphaSamples = (await metricsOf(alpha)).samples
    expect(alphaSamples.get('clawmatrix_known_nodes{reach="relayed"}')).toBe(1)
    const relayedConnections = alpha.node.swarm.getConnections(beta.node.peerId).length
    expect(alphaSamples.get('clawmatrix_connections{path="relayed",direction="inbound"}')! + alphaSamples.get('clawmatrix_connections{path="relayed",direction="outbound"}')!).toBe(relayedConnections)
    expect(relayedConnections).toBeGreaterThan(0)
    expect(hubSamples.get('clawmatrix_known_nodes{reach="relayed"}')).toBe(0)
  })

  it('counts what the stream protocols report, and rejected announcements', async () => {
    const { metrics } = hub.node
    metrics.requestFinished({ protocol: '/clawmatrix/model/1.0.0', direction: 'inbound', outcome: 'ok', durationMs: 1500, bytesSent: 2048, bytesReceived: 100 })
    metrics.requestFinished({ protocol: '/clawmatrix/model/1.0.0', direction: 'outbound', outcome: 'rejected', durationMs: 3 })
    metrics.failover('/clawmatrix/model/1.0.0')
    const relayed = alpha.node.swarm.getConnections(beta.node.peerId)[0]!
    alpha.node.metrics.streamOpened('/clawmatrix/tool/1.0.0', 'outbound', relayed)

    // A malformed announcement from a member is rejected by the others' validators.
    await alpha.node.swarm.services.pubsub.publish(ANNOUNCE_TOPIC, new TextEncoder().encode('not a card'))
    const hubSamples = await waitFor('the hub to count the rejected announcement', async () => {
      const { samples } = await metricsOf(hub)
      return (samples.get('clawmatrix_announcements_received_total{verdict="rejected"}') ?? 0) > 0 ? samples : undefined
    })
    const model = 'protocol="/clawmatrix/model/1.0.0"'
    expect(hubSamples.get(`clawmatrix_requests_total{${model},direction="inbound",outcome="ok"}`)).toBe(1)
    expect(hubSamples.get(`clawmatrix_requests_total{${model},direction="outbound",outcome="rejected"}`)).toBe(1)
    expect(hubSamples.get(`clawmatrix_request_duration_seconds_bucket{le="2.5",${model},direction="inbound"}`)).toBe(1)
    expect(hubSamples.get(`clawmatrix_request_duration_seconds_bucket{le="1",${model},direction="inbound"}`)).toBe(0)
    expect(hubSamples.get(`clawmatrix_request_sent_bytes_total{${model},direction="inbound"}`)).toBe(2048)
    expect(hubSamples.get(`clawmatrix_failovers_total{${model}}`)).toBe(1)
    const alphaSamples = (await metricsOf(alpha)).samples
    expect(alphaSamples.get('clawmatrix_streams_total{protocol="/clawmatrix/tool/1.0.0",direction="outbound",path="relayed"}')).toBe(1)
    expect(alphaSamples.has(`clawmatrix_requests_total{${model},direction="inbound",outcome="ok"}`)).toBe(false)
  })

  it('samples the event loop once a second, not every 10 ms (prom-client\'s default wakes an idle node 100 times a second)', async () => {
    // Each sample is the interval between two ticks of the sampling timer; a scrape resets them.
    const lag = await waitFor('a scrape with event-loop samples', async () => {
      const min = (await metricsOf(hub)).samples.get('nodejs_eventloop_lag_min_seconds')
      return min != null && min < 3_600 ? min : undefined
    }, { timeoutMs: 30_000, intervalMs: 2_500 })
    expect(lag).toBeGreaterThanOrEqual(EVENT_LOOP_SAMPLE_MS / 1000 * 0.9)
  })

  it('keeps serving every node\'s metrics after more nodes start and stop in the same process', async () => {
    const extra = await nodes.start({ nodeId: 'late', peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
    await waitFor('the hub to see the late node', () => hub.node.view.nodes().length === 4)
    for (const t of [hub, extra]) {
      const { samples } = await metricsOf(t)
      expect(samples.get('clawmatrix_known_nodes{reach="self"}')).toBe(1)
      expect([...samples.keys()].some(k => k.startsWith('libp2p_connection_manager_connections'))).toBe(true)
    }
    expect((await metricsOf(hub)).samples.get('clawmatrix_known_nodes{reach="direct"}')).toBe(3)
    await extra.node.stop()
    await waitFor('the hub to drop the late node', () => hub.node.view.nodes().length === 3)
    expect((await metricsOf(hub)).samples.get('clawmatrix_known_nodes{reach="direct"}')).toBe(2)
  })
})

describe('metric series per member', () => {
  it('token counts by calling node stop adding series past 4,096 and sum the rest as (other)', async () => {
    const metrics = new ClawmatrixMetrics()
    for (let i = 0; i < 4_100; i++) metrics.modelTokens({ model: 'm', host: 'h', caller: `member-${i}` }, { input: 1, output: 0 })
    const text = await metrics.registry.metrics()
    expect(text.match(/^clawmatrix_model_tokens_total\{/gm)).toHaveLength(4_097)
    expect(text).toContain('clawmatrix_model_tokens_total{model="(other)",host="(other)",caller="(other)",kind="input"} 4')
    expect(text).toContain('clawmatrix_model_tokens_total{model="m",host="h",caller="member-0",kind="input"} 1')
  })
})

describe('the mesh routes', () => {
  it('GET /clawmatrix/mesh has every node\'s links; the page is self-contained', async () => {
    await alpha.node.swarm.dial(beta.node.peerId) // on demand: the relayed link exists while used
    const mesh = await getJson<MeshReport>(alpha, '/clawmatrix/mesh')
    const hubId = hub.node.peerId.toString()
    const alphaId = alpha.node.peerId.toString()
    const betaId = beta.node.peerId.toString()
    expect(mesh.peerId).toBe(alphaId)
    expect(mesh.links[alphaId]).toEqual(expect.arrayContaining([{ peerId: hubId, relayed: false }, { peerId: betaId, relayed: true }]))
    await waitFor('the hub\'s card to list both members', async () => {
      const links = (await getJson<MeshReport>(alpha, '/clawmatrix/mesh')).links[hubId] ?? []
      return [alphaId, betaId].every(peerId => links.some(l => l.peerId === peerId && !l.relayed))
    })

    const res = await fetch(`${alpha.node.http.url}/clawmatrix/`)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'")
    const html = await res.text()
    expect(html).toContain('<svg')
    // No CDN, no external asset: nothing is loaded from elsewhere.
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//)
    expect(html).not.toMatch(/@import|url\(/)
    const redirect = await fetch(`${alpha.node.http.url}/clawmatrix`, { redirect: 'manual' })
    expect(redirect.status).toBe(301)
    expect(redirect.headers.get('location')).toBe('/clawmatrix/')
  })
})
