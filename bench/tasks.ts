/**
 * The task layer beside the one-call hand-off, in one run on the same pair
 * of real nodes (docs/tasks.md, docs/benchmarks.md):
 *
 * 1. hand-off round trip with wait:true (`node.client.handoff`, the hand-off
 *    protocol) vs a task: submit until accepted, and submit until the result
 *    is in the caller's record; an in-process agent and a command agent;
 * 2. remote progress to the caller: from the executing agent reporting
 *    progress to the line printed by `clawmatrix task <id> --follow` (a real
 *    CLI process), beside the caller's own HTTP follow stream read in the
 *    bench process. Executor, caller and the bench share one clock.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
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
const { TaskService: Tasks } = await importDist<typeof import('../src/tasks/service.js')>('tasks/service.js')

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

interface Pair {
  caller: ClawmatrixNode
  callerTasks: TaskService
  runner: BenchRunner
  stop(): Promise<void>
}

async function startPair (): Promise<Pair> {
  const secret = randomBytes(32).toString('hex')
  const stops: Array<() => Promise<void>> = []
  const start = async (input: Record<string, unknown>, runner?: AgentRunner): Promise<{ node: ClawmatrixNode, tasks: TaskService }> => {
    const stateDir = await mkdtemp(join(tmpdir(), `clawmatrix-bench-tasks-${String(input.nodeId)}-`))
    const config = parseConfig({ secret, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, ...input }, `bench node ${String(input.nodeId)}`)
    const node = await Node.create({ config, stateDir, log: { info: () => {}, warn: () => {} }, work: runner == null ? {} : { agentRunner: runner } })
    const tasks = new Tasks(node, stateDir)
    node.extend(tasks)
    await node.start()
    stops.push(async () => { await node.stop(); await rm(stateDir, { recursive: true, force: true }) })
    return { node, tasks }
  }
  const agents = [{ id: 'echo', command: ECHO_COMMAND }, { id: 'inproc' }, { id: 'ticker' }]
  const runner = new BenchRunner(new CommandAgentRunner(parseConfig({ nodeId: 'x', secret, agents }).agents))
  const executor = await start({ nodeId: 'executor', listen: true, agents }, runner)
  const address = executor.node.swarm.getMultiaddrs().map(String).find(a => a.includes('/ws') && !a.includes('p2p-circuit'))!
  const caller = await start({ nodeId: 'caller', peers: [{ nodeId: 'executor', url: address }] })
  await waitFor('the caller to see the executor\'s agents', () =>
    caller.node.view.nodes().some(n => n.nodeId === 'executor' && n.reach === 'direct' && n.agents.length === 3), { timeoutMs: 30_000, intervalMs: 20 })
  return { caller: caller.node, callerTasks: caller.tasks, runner, stop: async () => { for (const stop of stops.reverse()) await stop() } }
}

export async function tasksBench (options: TasksBenchOptions): Promise<BenchResult> {
  options.progress('tasks: starting a caller and an executor, direct')
  const pair = await startPair()
  try {
    const operations: Array<{ name: string, run: () => Promise<void> }> = []
    for (const agent of ['inproc', 'echo']) {
      operations.push(
        { name: `${agent}: hand-off, wait:true`, run: async () => { expect((await pair.caller.client.handoff(agent, 'ping', undefined)).reply) } },
        { name: `${agent}: task submit, until accepted`, run: async () => { await pair.callerTasks.submit(agent, 'ping') } },
        {
          name: `${agent}: task submit + result delivery`,
          run: async () => {
            const task = await pair.callerTasks.submit(agent, 'ping')
            expect((await pair.callerTasks.untilSettled(task.id)).result)
          }
        }
      )
    }
    options.progress(`tasks: round trips, ${options.warmup} warm-up + ${options.roundTrips} each, interleaved`)
    const samples = new Map(operations.map(op => [op, [] as number[]]))
    for (let round = -options.warmup; round < options.roundTrips; round++) {
      const shift = ((round % operations.length) + operations.length) % operations.length
      for (const op of [...operations.slice(shift), ...operations.slice(0, shift)]) {
        const { ms } = await timed(op.run)
        if (round >= 0) samples.get(op)!.push(ms)
      }
    }
    const variants = (agent: string): Variant[] => operations.filter(op => op.name.startsWith(`${agent}:`))
      .map((op, i) => ({ name: op.name, samples: samples.get(op)!, ...(i === 0 ? { baseline: true } : {}) }))

    options.progress(`tasks: ${options.ticks} progress reports to a \`clawmatrix task --follow\` line`)
    const follow = await followLatency(pair, options.ticks)
    return {
      name: 'tasks',
      title: 'tasks (submit, result delivery, progress to --follow) beside the one-call hand-off',
      measurements: [
        ...['inproc', 'echo'].map(agent => ({
          what: `hand-off vs task, ${agent === 'inproc' ? 'in-process agent' : 'command agent (a node process per run)'}, direct`,
          unit: 'ms' as const,
          variants: variants(agent),
          note: 'wait:true = node.client.handoff (one stream, request to result); task submit = TaskService.submit until the executor accepted (record written on both ends); ' +
            '+ result delivery = until the result is in the caller\'s record (the follow stream\'s final frame, record saved)'
        })),
        {
          what: 'remote progress to the caller: from the agent\'s report on the executor to the line',
          unit: 'ms',
          variants: [
            { name: 'HTTP follow stream (in the bench process)', samples: follow.http, baseline: true },
            { name: '`clawmatrix task <id> --follow` stdout line', samples: follow.cli }
          ],
          note: 'executor -> task protocol follow stream -> caller\'s record and listeners -> local HTTP NDJSON -> (the CLI process -> its stdout); one report at a time, the next after both saw the last'
        }
      ]
    }
  } finally {
    await pair.stop()
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
