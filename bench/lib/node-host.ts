/**
 * A node host: a child process that runs several clawmatrix nodes (the real
 * ClawmatrixNode from dist/, with its swarm, heartbeat, announcer, cluster
 * view and mesh connector) and does what the bench process asks over the
 * IPC channel (./host-api.ts). Started by ./hosts.ts; exits when the bench
 * process goes away.
 *
 * An unmanaged node's cluster secret comes from the environment, like the
 * CLI's; a managed node's from the invite it joins (NodeSpec.invite).
 */
import { createHmac } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { EchoLines, ECHO_PROTOCOL, sendBulk, serveSink } from './bench-streams.js'
import { importDist } from './dist.js'
import { LoopLag } from './loop-lag.js'
import { TrafficCounter } from './traffic-counter.js'
import type { ConvergenceRecord, HostMethod, HostMethods, HostReply, HostRequest, NodeSpec, PathKind, WatchCondition, WatchRecord } from './host-api.js'
import type { ClawmatrixNode } from '../../src/services/clawmatrix-node.js'
import type { Connection } from '@libp2p/interface'

const { ClawmatrixNode: Node } = await importDist<typeof import('../../src/services/clawmatrix-node.js')>('services/clawmatrix-node.js')
const { parseConfig } = await importDist<typeof import('../../src/config/load.js')>('config/load.js')
const { ANNOUNCE_TOPIC } = await importDist<typeof import('../../src/services/cluster/card.js')>('services/cluster/card.js')
const { SECRET_ENV } = await importDist<typeof import('../../src/cli/run-node.js')>('cli/run-node.js')
const { joinInvite, withJoinedState } = await importDist<typeof import('../../src/membership/index.js')>('membership/index.js')

const baseSecret = process.env[SECRET_ENV]
/** The folder ./hosts.ts made for this host's state directories, and removes when the host is gone (killed too). */
const stateRoot = process.env.CLAWMATRIX_BENCH_HOST_DIR ?? tmpdir()

/** A view is checked on its own events; this sweep only catches what no event announced. */
const CONVERGENCE_SWEEP_MS = 250
const STOP_DEADLINE_MS = 10_000
/** Distinct kinds of warnings kept (a kind is the message without ids and numbers). */
const MAX_WARNING_KINDS = 20
/** A watch is checked on its nodes' events; this sweep only catches what no event announced. */
const WATCH_SWEEP_MS = 20

interface Hosted {
  spec: NodeSpec
  node: ClawmatrixNode
  stateDir: string
  traffic: TrafficCounter
  convergence: ConvergenceRecord
  /** Stops watching the view. */
  unwatch?: () => void
}

const hosted = new Map<string, Hosted>()
/** Echo streams by key, with their node and how many connections to their peer opened since. */
const echoes = new Map<string, { lines: EchoLines, node: ClawmatrixNode, opened: number }>()
/** The nodes' warnings by kind: how many, and the first of each. */
const warnings = new Map<string, { count: number, first: string }>()
/** Armed watches by id: a record per covered node, and how to stop listening. */
const watches = new Map<string, { records: WatchRecord[], done: Promise<void>, stop: () => void }>()
let echoCount = 0
const loopLag = new LoopLag()
let cpuSince = process.cpuUsage()

function secretOf (cluster: string | undefined): string {
  if (baseSecret == null || baseSecret === '') throw new Error(`an unmanaged node needs the cluster secret in ${SECRET_ENV} (or give it an invite)`)
  return cluster == null ? baseSecret : createHmac('sha256', baseSecret).update(`cluster ${cluster}`).digest('hex')
}

function get (nodeId: string): Hosted {
  const entry = hosted.get(nodeId)
  if (entry == null) throw new Error(`no node ${nodeId} in this host (it has ${[...hosted.keys()].join(', ') || 'none'})`)
  return entry
}

async function startNode (spec: NodeSpec): Promise<Hosted> {
  const stateDir = await mkdtemp(join(stateRoot, `clawmatrix-bench-${spec.nodeId}-`))
  const input = {
    nodeId: spec.nodeId,
    listen: spec.listen,
    listenHost: '127.0.0.1',
    listenPort: 0,
    proxyPort: 0,
    peers: spec.peers,
    heartbeat: { intervalMs: spec.intervalMs, ...(spec.maxMissed == null ? {} : { maxMissed: spec.maxMissed }) },
    mesh: { mode: spec.mode ?? 'on-demand' }
  }
  // A managed node: its key, certificate, the authority and the secret come from the invite, as `clawmatrix join` installs them.
  const config = parseConfig(spec.invite == null
    ? { ...input, secret: secretOf(spec.cluster) }
    : withJoinedState(input, await joinInvite(spec.invite, stateDir)), `bench node ${spec.nodeId}`)
  const node = await Node.create({
    config,
    stateDir,
    log: {
      info: () => {},
      warn: message => { countWarning(`${spec.nodeId}: ${message}`) }
    }
  })
  const traffic = new TrafficCounter(node, ANNOUNCE_TOPIC)
  if (spec.ipColocationWeight != null) setIpColocationWeight(node, spec.ipColocationWeight)
  const entry: Hosted = { spec, node, stateDir, traffic, convergence: { nodeId: spec.nodeId, listen: spec.listen, startedAt: 0, known: 1, reachable: 1, connections: { direct: 0, relayed: 0 } } }
  if (spec.expect != null) entry.unwatch = watch(entry, spec.expect, spec.mode ?? 'on-demand')
  await node.start()
  entry.convergence.startedAt = Date.now()
  hosted.set(spec.nodeId, entry)
  return entry
}

function countWarning (message: string): void {
  const kind = message.replace(/12D3KooW\w+/g, '…').replace(/\b(node|boot)-\d+\b/g, '…').replace(/\d+/g, 'N')
  const seen = warnings.get(kind)
  if (seen != null) seen.count++
  else if (warnings.size < MAX_WARNING_KINDS) warnings.set(kind, { count: 1, first: message })
}

/**
 * Overrides gossipsub's IP colocation penalty (peer score P6) on a created
 * node: a diagnostic reaching into gossipsub's internals, because all of a
 * loopback cluster's peers share one IP, and so do all peers reached
 * through one relay.
 */
function setIpColocationWeight (node: ClawmatrixNode, weight: number): void {
  const { score } = node.swarm.services.pubsub as unknown as { score?: { params?: { IPColocationFactorWeight?: number } } }
  if (score?.params?.IPColocationFactorWeight == null) throw new Error('gossipsub has no score.params.IPColocationFactorWeight to override (another gossipsub version?)')
  score.params.IPColocationFactorWeight = weight
}

/**
 * Records when the node's view first lists `expected` nodes, and when it
 * reaches them all: in `full` mode over an open connection to each, on
 * demand by a way to each (no connection until there is work).
 */
function watch ({ node, convergence }: Hosted, expected: number, mode: 'on-demand' | 'full'): () => void {
  let scheduled = false
  const check = (): void => {
    scheduled = false
    const now = Date.now()
    convergence.known = node.view.size + 1 // the others, and this node
    if (convergence.knowsAllAt == null && convergence.known >= expected) convergence.knowsAllAt = now
    // Describing every node is O(N): only once the view lists them all (waitConverged counts the rest at the end).
    if (convergence.known < expected) return
    convergence.reachable = reachable(node, mode)
    if (convergence.reachesAllAt == null && convergence.reachable >= expected) {
      convergence.reachesAllAt = now
      stop()
    }
  }
  // Coalesce a burst of events into one look at the view.
  const schedule = (): void => {
    if (scheduled) return
    scheduled = true
    setImmediate(check)
  }
  const onJoined = (event: CustomEvent<{ nodeId: string }>): void => {
    if (convergence.knowsAllAt == null) convergence.lastArrival = { nodeId: event.detail.nodeId, at: Date.now() }
    schedule()
  }
  const onConnection = (): void => {
    convergence.connectedAt ??= Date.now()
    schedule()
  }
  node.view.addEventListener('node:joined', onJoined)
  node.swarm.addEventListener('connection:open', onConnection)
  const sweep = setInterval(schedule, CONVERGENCE_SWEEP_MS)
  const stop = (): void => {
    clearInterval(sweep)
    node.view.removeEventListener('node:joined', onJoined)
    node.swarm.removeEventListener('connection:open', onConnection)
  }
  return stop
}

/** How many nodes the view reaches: in `full` mode over an open connection, on demand by any way. */
function reachable (node: ClawmatrixNode, mode: 'on-demand' | 'full'): number {
  return node.view.nodes().filter(n => mode === 'full' ? n.self || n.connected : n.reach !== 'unreachable').length
}

/**
 * Records, per node, the first moment `condition` holds: checked when the
 * node's view, membership or connections change (the moment the change
 * happened), and on a short sweep for anything no event announced.
 */
function armWatch (covered: Hosted[], condition: WatchCondition): { records: WatchRecord[], done: Promise<void>, stop: () => void } {
  const peer = peerIdFromString(condition.peerId)
  const checks = covered.map(({ spec, node }) => {
    const record: WatchRecord = { nodeId: spec.nodeId }
    const seqBefore = node.view.card(condition.peerId)?.seq ?? 0
    const met = condition.kind === 'card-newer'
      ? () => (node.view.card(condition.peerId)?.seq ?? 0) > seqBefore
      : () => node.membership?.refuses(peer) === true && node.view.card(condition.peerId) == null && node.swarm.getConnections(peer).length === 0
    return { node, record, met }
  })
  const { promise: done, resolve } = Promise.withResolvers<void>()
  const check = (): void => {
    const now = Date.now()
    for (const { record, met } of checks) if (record.metAt == null && met()) record.metAt = now
    if (checks.every(c => c.record.metAt != null)) resolve()
  }
  const events: Array<[EventTarget, string]> = checks.flatMap(({ node }) => [
    [node.view, 'node:joined'], [node.view, 'node:updated'], [node.view, 'node:left'],
    [node.swarm, 'connection:close'],
    ...node.membership == null ? [] : [[node.membership, 'peer:refused'] as [EventTarget, string]]
  ])
  // Checked once the event's own handlers ran (the card stored, the connection gone from the list).
  const onEvent = (): void => { queueMicrotask(check) }
  for (const [target, type] of events) target.addEventListener(type, onEvent)
  const sweep = setInterval(check, WATCH_SWEEP_MS)
  check()
  const stop = (): void => {
    clearInterval(sweep)
    for (const [target, type] of events) target.removeEventListener(type, onEvent)
    resolve()
  }
  return { records: checks.map(c => c.record), done, stop }
}

function connectionCount (node: ClawmatrixNode): { direct: number, relayed: number } {
  const open = node.swarm.getConnections().filter(c => c.status === 'open')
  const relayed = open.filter(c => c.remoteAddr.toString().includes('/p2p-circuit')).length
  return { direct: open.length - relayed, relayed }
}

/**
 * The open connection from `node` to `peer` of the given path (relayed or
 * direct). Members connect on demand, so a missing one is dialed first.
 */
async function connectionTo (node: ClawmatrixNode, peer: string, path: PathKind): Promise<Connection> {
  if (node.swarm.getConnections(peerIdFromString(peer)).length === 0) {
    await node.swarm.dial(peerIdFromString(peer), { signal: AbortSignal.timeout(10_000) }).catch(() => {})
  }
  const connections = node.swarm.getConnections(peerIdFromString(peer)).filter(c => c.status === 'open')
  const found = connections.find(c => c.remoteAddr.toString().includes('/p2p-circuit') === (path === 'relayed'))
  if (found == null) {
    throw new Error(`${node.config.nodeId} has no open ${path} connection to ${peer} (it has: ${connections.map(c => c.remoteAddr.toString()).join(', ') || 'none'})`)
  }
  return found
}

function registerEcho (lines: EchoLines, node: ClawmatrixNode): string {
  const key = `echo-${++echoCount}`
  const entry = { lines, node, opened: 0 }
  const remote = lines.connection.remotePeer
  node.swarm.addEventListener('connection:open', event => { if (event.detail.remotePeer.equals(remote)) entry.opened++ })
  echoes.set(key, entry)
  return key
}

const methods: { [M in HostMethod]: (params: HostMethods[M]['params']) => Promise<HostMethods[M]['result']> } = {
  async start ({ nodes }) {
    const started = await Promise.all(nodes.map(startNode))
    return started.map(({ node, convergence }) => ({
      nodeId: node.config.nodeId,
      peerId: node.peerId.toString(),
      ws: node.swarm.getMultiaddrs().map(String).find(a => a.includes('/ws') && !a.includes('/p2p-circuit')),
      startedAt: convergence.startedAt,
      http: node.http.url
    }))
  },

  async publishCard ({ nodeId }) {
    await get(nodeId).node.announcer.publish()
    return null
  },

  async armWatch ({ id, condition, exclude = [] }) {
    if (watches.has(id)) throw new Error(`a watch ${id} is armed already`)
    const covered = [...hosted.values()].filter(h => !exclude.includes(h.spec.nodeId) && h.node.peerId.toString() !== condition.peerId)
    watches.set(id, armWatch(covered, condition))
    return { nodes: covered.length }
  },

  async waitWatch ({ id, timeoutMs }) {
    const watch = watches.get(id)
    if (watch == null) throw new Error(`no watch ${id} is armed`)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([watch.done, new Promise(resolve => { timer = setTimeout(resolve, timeoutMs) })])
    clearTimeout(timer)
    watch.stop()
    watches.delete(id)
    return watch.records.map(r => ({ ...r }))
  },

  async waitConverged ({ timeoutMs }) {
    const deadline = Date.now() + timeoutMs
    const watched = (): Hosted[] => [...hosted.values()].filter(h => h.spec.expect != null)
    while (watched().some(h => h.convergence.reachesAllAt == null) && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    for (const h of watched()) {
      h.convergence.connections = connectionCount(h.node)
      if (h.convergence.reachesAllAt == null) h.convergence.reachable = reachable(h.node, h.spec.mode ?? 'on-demand')
    }
    return { records: watched().map(h => ({ ...h.convergence })), warnings: [...warnings.values()].map(w => ({ ...w })) }
  },

  async viewSize ({ nodeId }) {
    const nodes = get(nodeId).node.view.nodes()
    return { known: nodes.length, reachable: nodes.filter(n => n.reach !== 'unreachable').length }
  },

  async processStats ({ reset }) {
    const cpu = process.cpuUsage(cpuSince)
    globalThis.gc?.()
    globalThis.gc?.()
    const memory = process.memoryUsage()
    const stats = { cpuMs: (cpu.user + cpu.system) / 1000, nodes: hosted.size, heapAfterGcBytes: memory.heapUsed, rssBytes: memory.rss, ...loopLag.read() }
    if (reset) {
      cpuSince = process.cpuUsage()
      loopLag.reset()
    }
    return stats
  },

  async resetTraffic () {
    for (const { traffic } of hosted.values()) traffic.reset()
    return null
  },

  async readTraffic () {
    return [...hosted.values()].map(h => h.traffic.read())
  },

  async serveSink ({ nodeId }) {
    await serveSink(get(nodeId).node.swarm)
    return null
  },

  async sendBulk ({ from, to, path, bytes, chunkBytes, timeoutMs }) {
    const connection = await connectionTo(get(from).node, to, path)
    const ms = await sendBulk(connection, bytes, chunkBytes, AbortSignal.timeout(timeoutMs))
    return { ms, remoteAddr: connection.remoteAddr.toString() }
  },

  async serveEcho ({ nodeId }) {
    const { node } = get(nodeId)
    await node.swarm.handle(ECHO_PROTOCOL, (stream, connection) => {
      registerEcho(new EchoLines(stream, connection), node)
    }, { runOnLimitedConnection: true })
    return null
  },

  async openEcho ({ from, to, path }) {
    const { node } = get(from)
    const connection = await connectionTo(node, to, path)
    const stream = await connection.newStream(ECHO_PROTOCOL, { runOnLimitedConnection: true, signal: AbortSignal.timeout(10_000) })
    const key = registerEcho(new EchoLines(stream, connection), node)
    return { key, connectionId: connection.id, remoteAddr: connection.remoteAddr.toString() }
  },

  async acceptedEcho ({ nodeId, remote, path }) {
    const { node } = get(nodeId)
    const found = [...echoes].find(([, { lines, node: owner }]) =>
      owner === node &&
      lines.connection.remotePeer.toString() === remote &&
      lines.connection.remoteAddr.toString().includes('/p2p-circuit') === (path === 'relayed'))
    if (found == null) throw new Error(`${nodeId} accepted no ${path} echo stream from ${remote}`)
    return { key: found[0] }
  },

  async roundTrip ({ key, timeoutMs }) {
    const entry = echoes.get(key)
    if (entry == null) throw new Error(`no echo stream ${key}`)
    return { ms: await entry.lines.roundTrip(AbortSignal.timeout(timeoutMs)) }
  },

  async streamState ({ key }) {
    const entry = echoes.get(key)
    if (entry == null) throw new Error(`no echo stream ${key}`)
    const { stream, connection, closedAt, closeError } = entry.lines
    const all = entry.node.swarm.getConnections(connection.remotePeer)
    return {
      status: stream.status,
      readStatus: stream.readStatus,
      writeStatus: stream.writeStatus,
      closedAt,
      closeError,
      connectionId: connection.id,
      connectionStatus: connection.status,
      connections: all.map(c => ({ id: c.id, status: c.status, remoteAddr: c.remoteAddr.toString() })),
      connectionsOpenedSince: entry.opened
    }
  },

  async stopNodes () {
    const all = [...hosted.values()]
    hosted.clear()
    echoes.clear()
    for (const watch of watches.values()) watch.stop()
    watches.clear()
    warnings.clear()
    for (const h of all) h.unwatch?.()
    const deadline = new Promise(resolve => setTimeout(resolve, STOP_DEADLINE_MS).unref())
    await Promise.race([Promise.allSettled(all.map(async h => { await h.node.stop() })), deadline])
    await Promise.allSettled(all.map(async h => { await rm(h.stateDir, { recursive: true, force: true }) }))
    return null
  }
}

process.on('message', (request: HostRequest) => {
  const method = methods[request.method] as (params: unknown) => Promise<unknown>
  const reply = (message: HostReply): void => { process.send?.(message) }
  Promise.resolve()
    .then(async () => {
      if (method == null) throw new Error(`unknown host method ${request.method}`)
      return method(request.params)
    })
    .then(result => { reply({ id: request.id, ok: true, result: result ?? null }) },
      (err: Error) => { reply({ id: request.id, ok: false, error: err.stack ?? err.message }) })
})
// The bench process is gone (finished or crashed): do not outlive it.
process.on('disconnect', () => { process.exit(0) })
process.send?.({ ready: true })
