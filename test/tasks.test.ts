import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { alive } from './helpers/processes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-tasks-')) })
afterEach(async () => { await nodes.cleanup() })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const AGENT = [process.execPath, join(import.meta.dirname, 'fixtures', 'task-agent.mjs')]

/** home calls, office runs the agent `worker`. */
async function pair (officeStateDir?: string): Promise<{ home: TestNode, office: TestNode }> {
  const office = await nodes.start({ nodeId: 'office', listen: true, agents: [{ id: 'worker', command: AGENT }] }, officeStateDir)
  const home = await nodes.start({ nodeId: 'home', peers: [{ nodeId: 'office', url: office.wsAddress() }] })
  await waitFor('home to see office', () => home.node.view.nodes().find(n => n.nodeId === 'office')?.reach === 'direct')
  return { home, office }
}

describe('tasks', () => {
  it('returns at once with a task id; the result arrives in the caller\'s record, and both ends keep it on disk', async () => {
    const { home, office } = await pair()
    const flag = join(dir, `go-${Date.now()}`)
    const submitted = await home.tasks.submit('worker', `wait ${flag}`, { session: 'agent:main:main' })
    expect(submitted).toMatchObject({ role: 'caller', agent: 'worker', node: 'office', contextId: submitted.id })
    expect(['submitted', 'working']).toContain(submitted.state)
    await waitFor('progress on the caller', () => home.tasks.get(submitted.id).progress.some(p => p.message === 'step 1'))
    expect(home.tasks.get(submitted.id).state).toBe('working')
    await writeFile(flag, '')
    const done = await home.tasks.untilSettled(submitted.id)
    expect(done).toMatchObject({ state: 'completed', result: 'done' })
    const onDisk = JSON.parse(await readFile(join(home.stateDir, 'tasks', 'caller', `${submitted.id}.json`), 'utf8'))
    expect(onDisk).toMatchObject({ state: 'completed', result: 'done', owner: { nodeId: 'home', session: 'agent:main:main' } })
    const executed = JSON.parse(await readFile(join(office.stateDir, 'tasks', 'executor', `${submitted.id}.json`), 'utf8'))
    expect(executed).toMatchObject({ state: 'completed', owner: { nodeId: 'home', peerId: home.node.peerId.toString() } })
    expect(home.tasks.list('agent:main:main').map(t => t.id)).toEqual([submitted.id])
    // The executing node audits the submission (the task text stays out of it).
    const audit = await readFile(join(office.stateDir, 'audit.jsonl'), 'utf8')
    expect(JSON.parse(audit.split('\n')[0]!)).toMatchObject({ kind: 'task', caller: { name: 'home' }, what: { agent: 'worker' } })
    expect(audit).not.toContain(flag)
  })

  it('continues a conversation with its contextId: same agent, same node, the earlier turns', async () => {
    const { home } = await pair()
    const first = await home.tasks.untilSettled((await home.tasks.submit('worker', 'echo one')).id)
    expect(first.result).toBe('one (turns: 0; last: none)')
    const second = await home.tasks.submit(undefined, 'echo two', { contextId: first.contextId })
    expect(second.contextId).toBe(first.contextId)
    expect(second.id).not.toBe(first.id)
    const answered = await home.tasks.untilSettled(second.id)
    expect(answered.result).toBe('two (turns: 2; last: agent one (turns: 0; last: none))')
    // A follow-up message on a finished task is a new task in the same conversation.
    const third = await home.tasks.untilSettled((await home.tasks.message(second.id, 'echo three')).id)
    expect(third).toMatchObject({ contextId: first.contextId, result: expect.stringContaining('three (turns: 4;') })
  })

  it('carries input-required both ways: the question reaches the caller, the answer resumes the same task', async () => {
    const { home } = await pair()
    const task = await home.tasks.submit('worker', 'ask paint the shed')
    const asking = await home.tasks.untilSettled(task.id)
    expect(asking).toMatchObject({ state: 'input-required', question: 'which colour?' })
    const resumed = await home.tasks.message(task.id, 'green')
    expect(resumed.id).toBe(task.id)
    const done = await home.tasks.untilSettled(task.id)
    expect(done).toMatchObject({ state: 'completed', result: 'paint the shed in green' })
    expect(done.turns).toEqual([{ role: 'agent', text: 'which colour?' }, { role: 'user', text: 'green' }])
  })

  it('cancels a command agent\'s task by killing its process tree', async () => {
    const { home } = await pair()
    const pidFile = join(dir, `tree-${Date.now()}.pid`)
    const task = await home.tasks.submit('worker', `tree ${pidFile}`)
    await waitFor('the tree to be up', () => home.tasks.get(task.id).progress.some(p => p.message === 'tree up'))
    const grandchild = Number(await readFile(pidFile, 'utf8'))
    expect(alive(grandchild)).toBe(true)
    const { record, stopped } = await home.tasks.cancel(task.id)
    expect(stopped).toBe(true)
    expect(record.state).toBe('canceled')
    await waitFor('the grandchild to be gone', () => !alive(grandchild))
  })

  it('an executor that restarts reports the task it was running as failed, with the reason', async () => {
    const officeDir = await mkdtemp(join(dir, 'office-'))
    const { home, office } = await pair(officeDir)
    const flag = join(dir, `never-${Date.now()}`)
    const task = await home.tasks.submit('worker', `wait ${flag}`)
    await waitFor('the task to work', () => home.tasks.get(task.id).progress.length > 0)
    const listenPort = Number(office.wsAddress().split('/')[4])
    // A stop with the node's own state dir kept, then a start: what a crash and restart leave on disk.
    await office.node.stop()
    await waitFor('the caller to mark the task failed', () => home.tasks.get(task.id).state === 'failed')
    const restarted = await nodes.start({ nodeId: 'office', listen: true, agents: [{ id: 'worker', command: AGENT }], listenPort }, officeDir)
    expect(restarted.tasks.executor.active).toBe(0)
    const settled = await waitFor('the executor\'s account', () => {
      const record = home.tasks.get(task.id)
      return record.provisional !== true && record.error?.code !== 'executor-lost' ? record : undefined
    }, { timeoutMs: 60_000 })
    expect(settled.state).toBe('failed')
    expect(settled.error?.code).toMatch(/executor-(stopped|restarted)/)
    expect(existsSync(flag)).toBe(false)
  })
})
