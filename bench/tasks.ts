/**
 * The task layer beside the one-call hand-off, in one run on the same pair
 * of real nodes (docs/tasks.md, docs/benchmarks.md):
 *
 * 1. hand-off round trip with wait:true (`node.client.handoff`, the hand-off
 *    protocol) vs a task: submit until accepted, and submit until the result
 *    is in the caller's record; an in-process agent and a command agent;
 * 2. A2A through the mesh: the official `@a2a-js/sdk` client sends a message
 *    to the caller's A2A endpoint, which runs it as a task on the executor,
 *    beside the same task submitted with the in-process task API;
 * 3. all of the in-process agent's rows again with caller and executor
 *    sharing only a relay (both dial out), side by side with the direct pair;
 * 4. remote progress to the caller: from the executing agent reporting
 *    progress to the line printed by `clawmatrix task <id> --follow` (a real
 *    CLI process), beside the caller's own HTTP follow stream read in the
 *    bench process. Executor, caller and the bench share one clock.
 */
import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import { Role, TaskState, type Task } from '@a2a-js/sdk'
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory, type Client } from '@a2a-js/sdk/client'
import { importDist } from './lib/dist.js'
import { REPO_ROOT } from './lib/paths.js'
import { timed, waitFor } from './lib/wait.js'
import type { BenchResult, Variant } from './lib/report.js'
import type { ClawmatrixNode } from '../src/services/clawmatrix-node.js'
import type { AgentRunner, AgentRunOptions, AgentRunResult } from '../src/services/agents/runner.js'
import type { TaskService } from '../src/tasks/service.js'

const { ClawmatrixNode: Node } = await importDist<typeof import('../src/services/clawmatrix-node.js')>('services/clawmatrix-node.js')
const { CommandAgentRunner } = await importDist<typeof import('../src/services/agents/command-runner.js')>('services/agents/command-runner.js')
const { parseConfig } = await importDist<typeof import('../src/config/load.js')>('config/load.js')
const { nodeLogger } = await importDist<typeof import('../src/node/logging.js')>('node/logging.js')
const { TaskService: Tasks } = await importDist<typeof import('../src/tasks/service.js')>('tasks/service.js')
const { attachA2A } = await importDist<typeof import('../src/a2a/index.js')>('a2a/index.js')

export interface TasksBenchOptions {
  roundTrips: number
  warmup: number
  /** Progress messages timed to the --follow line. */
  ticks: number
  progress: (line: string) => void
}

export const TASKS_DEFAULTS: Omit<TasksBenchOptions, 'progress'> = { roundTrips: 100, warmup: 5, ticks: 100 }
export const TASKS_QUICK: Omit<TasksBenchOptions, 'progress'> = { roundTrips: 5, warmup: 1, ticks: 5 }

const ECHO_COMMAND = [process.execPath, '-e', 'let s="";process.stdin.on("data",d=>{s+=d});process.stdin.on("end",()=>{process.stdout.write(JSON.parse(s).task)})']

/** The executor's agents: `inproc` answers at once, `ticker` reports progress when told and ends when told, the rest are commands. */
class BenchRunner implements AgentRunner {
  ticker?: { report: (message: string) => void, finish: () => void }

  constructor (private readonly commands: AgentRunner) {}

  async has (agentId: string): Promise<boolean> {
    return agentId === 'inproc' || agentId === 'ticker' || await this.commands.has(agentId)
  }

  async run (agentId: string, task: string, context: unknown, options: AgentRunOptions): Promise<AgentRunResult> {
    if (agentId === 'inproc') return { text: task }
    if (agentId !== 'ticker') return this.commands.run(agentId, task, context, options)
    return new Promise(resolve => {
      this.ticker = { report: message => { options.onProgress?.(message) }, finish: () => { resolve({ text: 'ticked' }) } }
    })
  }
}

type PathKind = 'direct' | 'relayed'

interface Pair {
  kind: PathKind
  caller: ClawmatrixNode
  callerTasks: TaskService
  /** The official A2A client for the in-process agent, at the caller's A2A endpoint. */
  a2a: Client
  runner: BenchRunner
  stop(): Promise<void>
}

/**
 * A caller and an executor, joined directly (the executor listens and is the
 * caller's configured peer) or relayed (both dial out to a relay, so the
 * caller reaches the executor only through a circuit). Each pair is its own
 * cluster (its own secret): neither carries the other's traffic.
 */
async function startPair (kind: PathKind): Promise<Pair> {
  const secret = randomBytes(32).toString('hex')
  const stops: Array<() => Promise<void>> = []
  const start = async (input: Record<string, unknown>, runner?: AgentRunner): Promise<{ node: ClawmatrixNode, tasks: TaskService }> => {
    const stateDir = await mkdtemp(join(tmpdir(), `clawmatrix-bench-tasks-${String(input.nodeId)}-`))
    const config = parseConfig({ secret, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, ...input }, `bench node ${String(input.nodeId)}`)
    const node = await Node.create({ config, stateDir, log: { info: () => {}, warn: () => {} }, work: runner == null ? {} : { agentRunner: runner } })
    const tasks = new Tasks(node, stateDir)
    node.extend(tasks)
    attachA2A(node, tasks)
    await node.start()
    stops.push(async () => { await node.stop(); await rm(stateDir, { recursive: true, force: true }) })
    return { node, tasks }
  }
  const wsOf = (node: ClawmatrixNode): string => node.swarm.getMultiaddrs().map(String).find(a => a.includes('/ws') && !a.includes('p2p-circuit'))!
  const agents = [{ id: 'echo', command: ECHO_COMMAND }, { id: 'inproc' }, { id: 'ticker' }]
  const runner = new BenchRunner(new CommandAgentRunner(parseConfig({ nodeId: 'x', secret, agents }).agents, { logger: nodeLogger('bench') }))
  let caller: { node: ClawmatrixNode, tasks: TaskService }
  if (kind === 'direct') {
    const executor = await start({ nodeId: 'executor', listen: true, agents }, runner)
    caller = await start({ nodeId: 'caller', peers: [{ nodeId: 'executor', url: wsOf(executor.node) }] })
  } else {
    const relay = await start({ nodeId: 'relay', listen: true })
    const peers = [{ nodeId: 'relay', url: wsOf(relay.node) }]
    await start({ nodeId: 'executor', agents, peers }, runner)
    caller = await start({ nodeId: 'caller', peers })
  }
  await waitFor(`the caller to see the executor's agents, ${kind}`, () =>
    caller.node.view.nodes().some(n => n.nodeId === 'executor' && n.reach === kind && n.agents.length === 3), { timeoutMs: 30_000, intervalMs: 20 })
  const a2a = await a2aClient(caller.node, 'inproc')
  return { kind, caller: caller.node, callerTasks: caller.tasks, a2a, runner, stop: async () => { for (const stop of stops.reverse()) await stop() } }
}

/** The official A2A client, from the agent's card on the node's endpoint, as any A2A caller would make it. */
async function a2aClient (node: ClawmatrixNode, agent: string): Promise<Client> {
  return await new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, { transports: [new JsonRpcTransportFactory({})] }))
    .createFromUrl(`${node.http.url}/a2a/${agent}/`)
}

/** An A2A user message in the SDK's own shape. */
function userMessage (text: string): any {
  return { messageId: randomUUID(), role: Role.ROLE_USER, parts: [{ content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: '' }], contextId: '', taskId: '', metadata: undefined, extensions: [], referenceTaskIds: [] }
}

function answerOf (task: Task): string {
  return task.artifacts.flatMap(a => a.parts).map(p => p.content?.$case === 'text' ? p.content.value : '').join('')
}

/** The operations timed on one pair; the command agent's only on the direct pair (its cost is the process start). */
function operationsOf (pair: Pair): Operation[] {
  const operations: Operation[] = []
  for (const agent of pair.kind === 'direct' ? ['inproc', 'echo'] : ['inproc']) {
    operations.push(
      { pair, agent, name: 'hand-off, wait:true', run: async () => { expect((await pair.caller.client.handoff(agent, 'ping', undefined)).reply) } },
      { pair, agent, name: 'task submit, until accepted', run: async () => { await pair.callerTasks.submit(agent, 'ping') } },
      {
        pair,
        agent,
        name: 'task submit + result delivery',
        run: async () => {
          const task = await pair.callerTasks.submit(agent, 'ping')
          expect((await pair.callerTasks.untilSettled(task.id)).result)
        }
      }
    )
  }
  operations.push({
    pair,
    agent: 'inproc',
    name: 'A2A SendMessage (@a2a-js/sdk -> caller\'s endpoint -> task on the executor), blocking',
    run: async () => {
      const task = await pair.a2a.sendMessage({ message: userMessage('ping') } as any) as Task
      if (task.status?.state !== TaskState.TASK_STATE_COMPLETED) throw new Error(`the A2A task ended ${String(task.status?.state)}`)
      expect(answerOf(task))
    }
  })
  return operations
}

interface Operation {
  pair: Pair
  agent: string
  name: string
  run: () => Promise<void>
}

export async function tasksBench (options: TasksBenchOptions): Promise<BenchResult> {
  options.progress('tasks: starting a caller and an executor, direct, and another pair that shares only a relay')
  const pairs: Pair[] = []
  try {
    for (const kind of ['direct', 'relayed'] as const) pairs.push(await startPair(kind))
    const operations = pairs.flatMap(operationsOf)
    options.progress(`tasks: round trips, ${options.warmup} warm-up + ${options.roundTrips} each, ${operations.length} operations interleaved`)
    const samples = new Map(operations.map(op => [op, [] as number[]]))
    for (let round = -options.warmup; round < options.roundTrips; round++) {
      const shift = ((round % operations.length) + operations.length) % operations.length
      for (const op of [...operations.slice(shift), ...operations.slice(0, shift)]) {
        const { ms } = await timed(op.run)
        if (round >= 0) samples.get(op)!.push(ms)
      }
    }
    const variants = (ops: Operation[], label: (op: Operation) => string): Variant[] =>
      ops.map((op, i) => ({ name: label(op), samples: samples.get(op)!, ...(i === 0 ? { baseline: true } : {}) }))
    const inDirect = (agent: string): Operation[] => operations.filter(op => op.pair.kind === 'direct' && op.agent === agent && !op.name.startsWith('A2A'))
    const a2aSide = operations.filter(op => op.agent === 'inproc' && (op.name.startsWith('A2A') || op.name === 'task submit + result delivery'))
    const inproc = ['hand-off, wait:true', 'task submit, until accepted', 'task submit + result delivery'].flatMap(name => operations.filter(op => op.agent === 'inproc' && op.name === name))

    options.progress(`tasks: ${options.ticks} progress reports to a \`clawmatrix task --follow\` line`)
    const follow = await followLatency(pairs[0]!, options.ticks)
    const note = 'wait:true = node.client.handoff (one stream, request to result); task submit = TaskService.submit until the executor accepted (record written on both ends); ' +
      '+ result delivery = until the result is in the caller\'s record (the follow stream\'s final frame, record saved)'
    return {
      name: 'tasks',
      title: 'tasks (submit, result delivery, A2A through the mesh, progress to --follow) beside the one-call hand-off, direct and relayed',
      measurements: [
        ...['inproc', 'echo'].map(agent => ({
          what: `hand-off vs task, ${agent === 'inproc' ? 'in-process agent' : 'command agent (a node process per run)'}, direct`,
          unit: 'ms' as const,
          variants: variants(inDirect(agent), op => op.name),
          note
        })),
        {
          what: 'in-process agent, direct pair vs caller and executor sharing only a relay',
          unit: 'ms',
          variants: variants(inproc, op => `${op.name}, ${op.pair.kind}`),
          note: `${note}; relayed = both dial out to a relay, every request crosses a circuit (opened on demand by the first one)`
        },
        {
          what: 'A2A SendMessage through the mesh vs the in-process task API (same agent, same executor), direct and relayed',
          unit: 'ms',
          variants: variants(a2aSide, op => `${op.name.startsWith('A2A') ? 'A2A SendMessage, blocking' : 'TaskService.submit + result'}, ${op.pair.kind}`),
          note: 'A2A = the official @a2a-js/sdk client (JSON-RPC over HTTP, keep-alive) -> the caller node\'s /a2a/inproc endpoint -> a clawmatrix task on the executor, ' +
            'answered when the task completed; the task API = TaskService.submit + untilSettled on the caller node, in the bench process'
        },
        {
          what: 'remote progress to the caller: from the agent\'s report on the executor to the line',
          unit: 'ms',
          variants: [
            { name: 'HTTP follow stream (in the bench process)', samples: follow.http, baseline: true },
            { name: '`clawmatrix task <id> --follow` stdout line', samples: follow.cli }
          ],
          note: 'direct pair; executor -> task protocol follow stream -> caller\'s record and listeners -> local HTTP NDJSON -> (the CLI process -> its stdout); one report at a time, the next after both saw the last'
        }
      ]
    }
  } finally {
    for (const pair of pairs.reverse()) await pair.stop()
  }
}

/** Times progress reports from the executor's agent to an HTTP follower and to a `--follow` CLI line. */
async function followLatency (pair: Pair, ticks: number): Promise<{ http: number[], cli: number[] }> {
  const task = await pair.callerTasks.submit('ticker', 'tick')
  await waitFor('the ticker to run', () => pair.runner.ticker != null, { timeoutMs: 30_000, intervalMs: 5 })
  const port = new URL(pair.caller.http.url).port
  const seen = new Map<string, { http?: number, cli?: number }>()
  const http = await fetch(`http://127.0.0.1:${port}/clawmatrix/task?id=${task.id}&follow=1`)
  const httpLines = createInterface({ input: Readable.fromWeb(http.body as any) })
  httpLines.on('line', line => {
    const parsed = JSON.parse(line)
    if (parsed.type === 'progress') (seen.get(parsed.message) ?? seen.set(parsed.message, {}).get(parsed.message)!).http = performance.now()
  })
  const cli = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'cli', 'main.js'), 'task', task.id, '--follow', '--port', port], { stdio: ['ignore', 'pipe', 'inherit'] })
  createInterface({ input: cli.stdout }).on('line', line => {
    const message = line.match(/^\[progress\] (tick-\S+)$/)?.[1]
    if (message != null) (seen.get(message) ?? seen.set(message, {}).get(message)!).cli = performance.now()
  })
  const result = { http: [] as number[], cli: [] as number[] }
  try {
    // A first report both must show, so the CLI is known to be following before timing starts.
    pair.runner.ticker!.report('tick-warmup')
    await waitFor('the CLI to print the first report', () => seen.get('tick-warmup')?.cli != null && seen.get('tick-warmup')?.http != null, { timeoutMs: 60_000, intervalMs: 5 })
    for (let i = 0; i < ticks; i++) {
      const message = `tick-${i}`
      const sent = performance.now()
      pair.runner.ticker!.report(message)
      const got = await waitFor(`${message} on both followers`, () => {
        const s = seen.get(message)
        return s?.http != null && s.cli != null ? s : undefined
      }, { timeoutMs: 30_000, intervalMs: 1 })
      result.http.push(got.http! - sent)
      result.cli.push(got.cli! - sent)
    }
  } finally {
    pair.runner.ticker!.finish()
    await new Promise(resolve => cli.once('close', resolve))
    httpLines.close()
  }
  return result
}

function expect (value: unknown): void {
  if (value !== 'ping') throw new Error(`expected the answer "ping", got ${JSON.stringify(value)}`)
}
