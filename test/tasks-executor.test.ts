/**
 * The executing side's accept, without a network: a task is accepted
 * (`submitted`, stored) before its agent starts, and the agent starts only
 * once the protocol's answer is on its way. A host may hold its thread to
 * start an agent (an OpenClaw gateway writes its session store
 * synchronously), and the caller waits only 15 s for that answer.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultLogger } from '@libp2p/logger'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TaskExecutor } from '../src/tasks/executor.js'
import { TaskStore } from '../src/tasks/store.js'
import type { AgentRunner, AgentRunOptions } from '../src/services/agents/runner.js'
import { waitFor } from './helpers/wait.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-executor-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const owner = { nodeId: 'home', peerId: 'home-peer', session: 'agent:main:main' }

/** An OpenClaw-like runner: it cannot stop a run once started; each run waits for `finish`. */
function heldRunner (): AgentRunner & { calls: string[], finish: PromiseWithResolvers<void> } {
  const finish = Promise.withResolvers<void>()
  const calls: string[] = []
  return {
    calls,
    finish,
    has: agent => agent === 'main',
    stopsOnCancel: () => false,
    run: async (_agent, task, _context, options: AgentRunOptions) => {
      calls.push(task)
      await finish.promise
      options.signal.throwIfAborted()
      return { text: `done: ${task}` }
    }
  }
}

async function newExecutor (name: string, runner: AgentRunner): Promise<{ executor: TaskExecutor, store: TaskStore }> {
  const store = new TaskStore({ dir: join(dir, name), maxAgeMs: 60_000, maxRecords: 100 })
  await store.load()
  const executor = new TaskExecutor({ nodeId: 'worker', peerId: 'worker-peer', runner, store, log: defaultLogger().forComponent('test') })
  await executor.start()
  return { executor, store }
}

describe('task executor: accepting before the agent starts', () => {
  it('a task is submitted and stored before its agent starts; the agent starts once the answer is out', async () => {
    const runner = heldRunner()
    const { executor } = await newExecutor('accept', runner)
    const answered = Promise.withResolvers<void>()
    const { record } = await executor.submit({ id: 'task-1', agent: 'main', task: 'alpha' }, owner, answered.promise)
    expect(record.state).toBe('submitted')
    expect(JSON.parse(await readFile(join(dir, 'accept', 'task-1.json'), 'utf8')).state).toBe('submitted')
    // the answer is not out yet: no agent runs
    await new Promise(resolve => setImmediate(resolve))
    expect(runner.calls).toEqual([])

    const states: string[] = []
    executor.follow('task-1', event => { if (event.type === 'state') states.push(event.task.state) })
    answered.resolve()
    await waitFor('the agent to start', () => runner.calls.length === 1)
    expect(executor.get('task-1', 'home-peer').state).toBe('working')
    runner.finish.resolve()
    await waitFor('the task to complete', () => executor.get('task-1', 'home-peer').state === 'completed')
    expect([...new Set(states)]).toEqual(['working', 'completed'])
    expect(executor.get('task-1', 'home-peer').result).toBe('done: alpha')
    await executor.stop()
  })

  it('a task cancelled before its agent started is stopped, even on a host that cannot stop a started run', async () => {
    const runner = heldRunner()
    const { executor } = await newExecutor('cancel', runner)
    const answered = Promise.withResolvers<void>()
    await executor.submit({ id: 'task-2', agent: 'main', task: 'beta' }, owner, answered.promise)
    const { record, stopped } = await executor.cancel('task-2', 'home-peer')
    expect(record.state).toBe('canceled')
    expect(stopped).toBe(true)
    answered.resolve()
    await new Promise(resolve => setImmediate(resolve))
    expect(runner.calls).toEqual([])

    // started, the same host's run cannot be stopped: the task says so
    await executor.submit({ id: 'task-3', agent: 'main', task: 'gamma' }, owner, Promise.resolve())
    await waitFor('the agent to start', () => runner.calls.includes('gamma'))
    const later = await executor.cancel('task-3', 'home-peer')
    expect(later.stopped).toBe(false)
    expect(later.record.note).toMatch(/worker cannot stop a running main turn/)
    runner.finish.resolve()
    await executor.stop()
  })
})
