/**
 * Managed membership against an unmanaged cluster, in one run:
 *
 * 1. connection setup and first request: a fresh connection between two
 *    swarms and a ping on it, with the certificate exchange (managed) and
 *    without (unmanaged), interleaved;
 * 2. validation cost per card: the card's own decoding (the baseline both
 *    modes pay), a certificate's signature check (a certificate seen for the
 *    first time) and the cached check every later card of that peer takes;
 * 3. revocation (./membership-revoke.ts): N real ClawmatrixNodes over
 *    several processes (one listening hub, the rest dialing it); the time
 *    from signing a revocation and posting it to one node's local endpoint
 *    (what `clawmatrix revoke --port` does) until the last other node refuses
 *    the revoked peer, has dropped its card and holds no connection to it,
 *    beside the time a card takes to reach every node over the same gossip
 *    mesh (the baseline), interleaved, several times per cluster.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { importDist } from './lib/dist.js'
import { waitFor } from './lib/wait.js'
import { revocationTime } from './membership-revoke.js'
import type { BenchResult, Measurement } from './lib/report.js'

const membership = await importDist<typeof import('../src/membership/index.js')>('membership/index.js')
const { createSwarm } = await importDist<typeof import('../src/node/swarm.js')>('node/swarm.js')
const { loadOrCreatePeerKey } = await importDist<typeof import('../src/node/identity.js')>('node/identity.js')
const { nodeLogger } = await importDist<typeof import('../src/node/logging.js')>('node/logging.js')
const { parseConfig } = await importDist<typeof import('../src/config/load.js')>('config/load.js')
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
      ...await revocationTime({ ...options, memberHosts: 5 }, authority)
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
