/**
 * Managed membership against an unmanaged cluster, in one run:
 *
 * 1. connection setup and first request: a fresh connection between two
 *    swarms and a ping on it, with the certificate exchange (managed) and
 *    without (unmanaged), interleaved;
 * 2. validation cost per card: the card's own decoding (the baseline both
 *    modes pay), a certificate's signature check (a certificate seen for the
 *    first time) and the cached check every later card of that peer takes;
 * 3. revocation: N real ClawmatrixNodes in this process (one listening hub,
 *    the rest dialing it, meshing from the cards); the time from signing a
 *    revocation and posting it to one node's local endpoint (what
 *    `clawmatrix revoke --port` does) until the last other node refuses the
 *    revoked peer and holds no connection to it, beside the time a card
 *    takes to reach every node over the same gossip mesh (the baseline),
 *    interleaved, several times per cluster.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { importDist } from './lib/dist.js'
import { waitFor } from './lib/wait.js'
import type { BenchResult, Measurement } from './lib/report.js'

const membership = await importDist<typeof import('../src/membership/index.js')>('membership/index.js')
const { createSwarm } = await importDist<typeof import('../src/node/swarm.js')>('node/swarm.js')
const { loadOrCreatePeerKey } = await importDist<typeof import('../src/node/identity.js')>('node/identity.js')
const { nodeLogger } = await importDist<typeof import('../src/node/logging.js')>('node/logging.js')
const { parseConfig } = await importDist<typeof import('../src/config/load.js')>('config/load.js')
const { ClawmatrixNode } = await importDist<typeof import('../src/services/clawmatrix-node.js')>('services/clawmatrix-node.js')
const { decodeAnnouncement, encodeAnnouncement } = await importDist<typeof import('../src/services/cluster/card.js')>('services/cluster/card.js')

export interface MembershipBenchOptions {
  connections: number
  validations: number
  /** Cluster sizes for the revocation time, one cluster each. */
  sizes: number[]
  /** Revocations per cluster (each of another node), each after a card as the baseline. */
  revocations: number
  progress: (line: string) => void
}

export const MEMBERSHIP_DEFAULTS: Omit<MembershipBenchOptions, 'progress'> = { connections: 40, validations: 200, sizes: [10, 50], revocations: 5 }
export const MEMBERSHIP_QUICK: Omit<MembershipBenchOptions, 'progress'> = { connections: 5, validations: 20, sizes: [4], revocations: 2 }
/** Only the revocation time, at 10 and 50 nodes (`npm run bench -- membership-revoke`). */
export const MEMBERSHIP_REVOKE: Omit<MembershipBenchOptions, 'progress'> = { connections: 0, validations: 0, sizes: [10, 50], revocations: 5 }

const quiet = { info: () => {}, warn: () => {} }

export async function membershipBench (options: MembershipBenchOptions): Promise<BenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'clawmatrix-bench-membership-'))
  try {
    const authority = await membership.Authority.create(join(dir, 'authority'))
    let count = 0
    const joined = async (nodeId: string): Promise<string> => {
      const { token } = await authority.invite({ nodeId, newKey: true })
      const stateDir = join(dir, `${nodeId}-${++count}`)
      await membership.joinInvite(token, stateDir)
      return stateDir
    }
    const measurements = [
      ...options.connections > 0 ? [await connectionSetup(options, joined)] : [],
      ...options.validations > 0 ? [await validationCost(options, joined)] : [],
      ...await revocationTime(options, joined, authority)
    ]
    return { name: 'membership', title: 'managed membership (certificates) beside an unmanaged cluster', measurements }
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
  }
}

async function connectionSetup (options: MembershipBenchOptions, joined: (nodeId: string) => Promise<string>): Promise<Measurement> {
  options.progress(`connection setup: ${options.connections} fresh connections + ping per variant`)
  const swarmOf = async (nodeId: string, managed: boolean) => {
    const stateDir = await joined(nodeId)
    const state = (await membership.loadJoinedState(stateDir))!
    const config = parseConfig({ nodeId, secret: state.secret, listen: true, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0 })
    const admission = managed ? await membership.Membership.load(stateDir, { logger: nodeLogger(nodeId) }) : undefined
    const swarm = await createSwarm(config, await loadOrCreatePeerKey(stateDir), { admission, relayReservations: false })
    await swarm.start()
    return swarm
  }
  const pairs = { managed: [await swarmOf('m-a', true), await swarmOf('m-b', true)], unmanaged: [await swarmOf('u-a', false), await swarmOf('u-b', false)] }
  const samples: Record<string, number[]> = { managed: [], unmanaged: [] }
  try {
    for (let i = 0; i < options.connections; i++) {
      for (const kind of ['unmanaged', 'managed'] as const) {
        const [a, b] = pairs[kind]
        const address = multiaddr(a!.getMultiaddrs().find(m => m.toString().includes('/ws/'))!.toString())
        const start = performance.now()
        const connection = await b!.dial(address)
        await b!.services.ping.ping(a!.peerId)
        samples[kind]!.push(performance.now() - start)
        await connection.close()
        await waitFor('the connection to close', () => b!.getConnections(a!.peerId).length === 0)
      }
    }
  } finally {
    for (const swarm of [...pairs.managed, ...pairs.unmanaged]) await swarm.stop()
  }
  return {
    what: 'new connection (ws + Noise + admission + yamux) and a first ping on it',
    unit: 'ms',
    variants: [{ name: 'unmanaged', samples: samples.unmanaged!, baseline: true }, { name: 'managed (certificates)', samples: samples.managed! }],
    note: 'two swarms in this process on loopback; interleaved'
  }
}

async function validationCost (options: MembershipBenchOptions, joined: (nodeId: string) => Promise<string>): Promise<Measurement> {
  options.progress(`validation: ${options.validations} samples of 100 checks each`)
  const stateDir = await joined('validator')
  const members = await membership.Membership.load(stateDir, { logger: nodeLogger('validator') })
  const other = (await membership.loadJoinedState(await joined('member')))!
  const card = {
    v: 1, kind: 'card', nodeId: 'member', peerId: other.certificate.peerId, version: '0.1.0', seq: 1, intervalMs: 15_000,
    addresses: ['/ip4/127.0.0.1/tcp/19000/ws'], agents: [{ id: 'coder', description: 'writes code', tags: ['code'] }],
    models: [{ id: 'm', provider: 'ollama' }], tags: [], toolProxy: { enabled: true, allow: [], deny: [] }, links: [], certificate: other.certificate
  } as const
  const bytes = encodeAnnouncement(card as any)
  const key = membership.parsePublicKey(members.authority)
  const perOp = (run: () => void): number[] => {
    const samples: number[] = []
    for (let i = 0; i < options.validations; i++) {
      const start = performance.now()
      for (let j = 0; j < 100; j++) run()
      samples.push((performance.now() - start) / 100)
    }
    return samples
  }
  return {
    what: 'checking one card [per card]',
    unit: 'ms',
    variants: [
      { name: 'decode + schema (both modes)', samples: perOp(() => { decodeAnnouncement(bytes) }), baseline: true },
      { name: 'certificate signature (first card of a peer)', samples: perOp(() => { membership.checkCertificate(key, other.certificate) }) },
      { name: 'certificate, known (every later card)', samples: perOp(() => { members.accept(other.certificate, other.certificate.peerId) }) }
    ],
    note: 'Ed25519 verify through node:crypto; a peer\'s later cards repeat the same certificate and skip the signature check'
  }
}

async function revocationTime (options: MembershipBenchOptions, joined: (nodeId: string) => Promise<string>, authority: Awaited<ReturnType<typeof membership.Authority.open>>): Promise<Measurement[]> {
  const measurements: Measurement[] = []
  for (const size of options.sizes) {
    options.progress(`revocation: ${size} nodes, ${options.revocations} revocations`)
    const nodes: Array<Awaited<ReturnType<typeof ClawmatrixNode.create>>> = []
    try {
      // Invites one at a time: they append to the authority's issued.json.
      const dirs = new Map<string, string>()
      for (const nodeId of ['hub', ...Array.from({ length: size - 1 }, (_, i) => `n${i}`)]) dirs.set(nodeId, await joined(nodeId))
      const start = async (nodeId: string, extra: Record<string, unknown>) => {
        const stateDir = dirs.get(nodeId)!
        const config = parseConfig(membership.withJoinedState({ listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, heartbeat: { intervalMs: 1000, maxMissed: 10 }, ...extra }, await membership.loadJoinedState(stateDir)))
        const node = await ClawmatrixNode.create({ config, stateDir, log: quiet })
        await node.start()
        nodes.push(node)
        return node
      }
      const hub = await start('hub', { listen: true })
      const url = hub.swarm.getMultiaddrs().find(m => m.toString().includes('/ws/'))!.toString()
      // A few at a time: fifty handshakes at once on a loaded machine time out and back off.
      for (let i = 1; i < size; i += 10) {
        await Promise.all(Array.from({ length: Math.min(10, size - i) }, async (_, j) => start(`n${i + j - 1}`, { peers: [{ nodeId: 'hub', url }] })))
      }
      await waitFor(`${size} nodes to know each other`, () => nodes.every(n => n.view.nodes().length === size), { timeoutMs: 300_000, intervalMs: 100 })
      // The revocation goes to n0's local endpoint, as `clawmatrix revoke --port` sends it; the revoked
      // nodes are the highest numbered. Interleaved with the baseline: a card n0 publishes, on the
      // same gossip mesh, until every other node holds it.
      const sender = nodes.find(n => n.config.nodeId === 'n0')!
      const revoked = new Set<typeof sender>()
      const card: number[] = []
      const revoke: number[] = []
      for (let k = 0; k < options.revocations; k++) {
        const others = nodes.filter(n => n !== sender && !revoked.has(n))
        card.push(await cardPropagation(sender, others))
        const target = nodes.find(n => n.config.nodeId === `n${size - 2 - k}`)!
        revoked.add(target)
        const t0 = performance.now()
        const signed = await authority.revoke(target.config.nodeId)
        const res = await fetch(`${sender.http.url}/clawmatrix/revocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ revocation: signed.revocation }) })
        if (!res.ok) throw new Error(`the revocation was refused: HTTP ${res.status} ${await res.text()}`)
        const rest = nodes.filter(n => !revoked.has(n))
        await waitFor('every node to refuse the revoked peer', () => rest.every(n =>
          n.membership!.refuses(target.peerId) && n.swarm.getConnections(target.peerId).length === 0), { timeoutMs: 60_000, intervalMs: 2 })
        revoke.push(performance.now() - t0)
      }
      // Said at once: a larger cluster that then fails to converge must not take these numbers with it.
      options.progress(`${size} nodes: card ${card.map(ms => ms.toFixed(1)).join(', ')} ms; revoke ${revoke.map(ms => ms.toFixed(1)).join(', ')} ms`)
      measurements.push({
        what: `${size} nodes: a card, and a revocation, until the last other node has it [per event]`,
        unit: 'ms',
        variants: [
          { name: 'card published by n0 -> every other node holds it (baseline)', samples: card, baseline: true },
          { name: 'revoke (sign + POST to n0) -> every other node refuses the peer, no connection left', samples: revoke }
        ],
        note: `all ${size} nodes in this process, on demand (members connect to the hub, more when there is work), heartbeat 1 s; gossip carries both; interleaved`
      })
    } finally {
      await Promise.allSettled(nodes.map(async n => { await n.stop() }))
    }
  }
  return measurements
}

/** Publishes a new card on `sender` and times it until every node of `others` holds that card. */
async function cardPropagation (sender: Awaited<ReturnType<typeof ClawmatrixNode.create>>, others: Array<Awaited<ReturnType<typeof ClawmatrixNode.create>>>): Promise<number> {
  const peer = sender.peerId.toString()
  const before = Math.max(...others.map(n => n.view.card(peer)?.seq ?? 0))
  const t0 = performance.now()
  await sender.announcer.publish()
  await waitFor('every node to hold the new card', () => others.every(n => (n.view.card(peer)?.seq ?? 0) > before), { timeoutMs: 60_000, intervalMs: 2 })
  return performance.now() - t0
}
