/**
 * Real ClawmatrixNodes (from dist/) in the bench process, arranged for the
 * work bench: a caller and an executor joined either directly (two
 * listening nodes) or through a relay (two dial-out-only nodes and a
 * listening relay). Each arrangement is its own cluster (its own secret),
 * so neither can carry the other's traffic.
 *
 * The executor offers two agents: `echo`, a command agent (a `node -e`
 * process per hand-off), and `inproc`, answered in the process by
 * BenchAgentRunner, so the protocol's cost shows without a process start.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { importDist } from './dist.js'
import { waitFor } from './wait.js'
import type { ClawmatrixNode } from '../../src/services/clawmatrix-node.js'
import type { AgentRunner, AgentRunOptions, AgentRunResult } from '../../src/services/agents/runner.js'
import type { Connection } from '@libp2p/interface'

const { ClawmatrixNode: Node } = await importDist<typeof import('../../src/services/clawmatrix-node.js')>('services/clawmatrix-node.js')
const { CommandAgentRunner } = await importDist<typeof import('../../src/services/agents/command-runner.js')>('services/agents/command-runner.js')
const { parseConfig } = await importDist<typeof import('../../src/config/load.js')>('config/load.js')
const { nodeLogger } = await importDist<typeof import('../../src/node/logging.js')>('node/logging.js')

export type PathKind = 'direct' | 'relayed'

/** The command agent: reads `{task, ...}` as JSON on stdin and answers the task on stdout. */
export const ECHO_AGENT_COMMAND = [process.execPath, '-e',
  'let s="";process.stdin.on("data",d=>{s+=d});process.stdin.on("end",()=>{process.stdout.write(JSON.parse(s).task)})']
export const COMMAND_AGENT = 'echo'
export const IN_PROCESS_AGENT = 'inproc'
export const EXECUTOR = 'executor'

/** Answers IN_PROCESS_AGENT with the task itself, at once; every other agent goes to the command runner. */
export class BenchAgentRunner implements AgentRunner {
  constructor (private readonly commands: AgentRunner) {}

  async has (agentId: string): Promise<boolean> {
    return agentId === IN_PROCESS_AGENT || await this.commands.has(agentId)
  }

  async run (agentId: string, task: string, context: unknown, options: AgentRunOptions): Promise<AgentRunResult> {
    if (agentId !== IN_PROCESS_AGENT) return this.commands.run(agentId, task, context, options)
    options.signal.throwIfAborted()
    return { text: task }
  }
}

export interface WorkPath {
  kind: PathKind
  caller: ClawmatrixNode
  executor: ClawmatrixNode
  /** The caller's connection to the executor that every request of this path uses. */
  connection(): Connection
  /** Warnings the nodes logged (a reconnect, a relay problem) while the bench ran. */
  warnings: string[]
  stop(): Promise<void>
}

/** Starts a caller and an executor joined directly or through a relay, and waits until the caller sees the executor's agents on that path. */
export async function startWorkPath (kind: PathKind, toolWorkdir: string): Promise<WorkPath> {
  const secret = randomBytes(32).toString('hex')
  const started: Array<{ node: ClawmatrixNode, stateDir: string }> = []
  const warnings: string[] = []
  const start = async (input: Record<string, unknown>): Promise<ClawmatrixNode> => {
    const stateDir = await mkdtemp(join(tmpdir(), `clawmatrix-bench-work-${String(input.nodeId)}-`))
    const config = parseConfig({ secret, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, ...input }, `bench node ${String(input.nodeId)}`)
    const commands = new CommandAgentRunner(config.agents, { logger: nodeLogger(config.nodeId) })
    const node = await Node.create({
      config,
      stateDir,
      log: { info: () => {}, warn: message => { warnings.push(`${config.nodeId}: ${message}`) } },
      work: { agentRunner: new BenchAgentRunner(commands) }
    })
    started.push({ node, stateDir })
    await node.start()
    return node
  }
  const stop = async (): Promise<void> => {
    await Promise.allSettled(started.map(async ({ node }) => { await node.stop() }))
    await Promise.allSettled(started.map(async ({ stateDir }) => { await rm(stateDir, { recursive: true, force: true }) }))
  }
  const executorConfig = {
    nodeId: EXECUTOR,
    agents: [{ id: COMMAND_AGENT, command: ECHO_AGENT_COMMAND }, { id: IN_PROCESS_AGENT }],
    toolProxy: { enabled: true, workdir: toolWorkdir }
  }
  try {
    let caller: ClawmatrixNode
    let executor: ClawmatrixNode
    if (kind === 'direct') {
      executor = await start({ ...executorConfig, listen: true })
      caller = await start({ nodeId: 'caller', listen: true, peers: [{ nodeId: EXECUTOR, url: wsAddress(executor) }] })
    } else {
      const relay = await start({ nodeId: 'relay', listen: true })
      const viaRelay = [{ nodeId: 'relay', url: wsAddress(relay) }]
      executor = await start({ ...executorConfig, peers: viaRelay })
      caller = await start({ nodeId: 'caller', peers: viaRelay })
    }
    await waitFor(`the caller to see the executor's agents, ${kind}`, () =>
      caller.view.nodes().some(n => n.nodeId === EXECUTOR && n.reach === kind && n.agents.length === 2), { timeoutMs: 30_000, intervalMs: 20 })
    const connection = (): Connection => onlyConnection(caller, executor, kind)
    connection()
    return { kind, caller, executor, connection, warnings, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

function wsAddress (node: ClawmatrixNode): string {
  const address = node.swarm.getMultiaddrs().map(String).find(a => a.includes('/ws') && !a.includes('/p2p-circuit'))
  if (address == null) throw new Error(`${node.config.nodeId} has no ws address`)
  return address
}

/**
 * The one kind of connection the caller has to the executor. Requests pick
 * any open connection to the peer, so a connection of the other kind would
 * make the figures a mix: that fails the bench instead.
 */
function onlyConnection (caller: ClawmatrixNode, executor: ClawmatrixNode, kind: PathKind): Connection {
  const open = caller.swarm.getConnections(executor.peerId).filter(c => c.status === 'open')
  const relayed = (c: Connection): boolean => c.remoteAddr.toString().includes('/p2p-circuit')
  const wrong = open.filter(c => relayed(c) !== (kind === 'relayed'))
  if (open.length === 0 || wrong.length > 0) {
    throw new Error(`expected only ${kind} connections from the caller to the executor, found: ${open.map(c => c.remoteAddr.toString()).join(', ') || 'none'}`)
  }
  return open[0]!
}
