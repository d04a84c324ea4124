import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runCli, runCliToEnd, type CliProcess } from './helpers/cli.js'
import { SECRET, testNodes } from './helpers/nodes.js'
import { freePort } from './helpers/ports.js'
import { waitFor } from './helpers/wait.js'
import type { TaskRecord } from '../src/tasks/task.js'

const nodes = testNodes()
const children: CliProcess[] = []
let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-tasks-cli-')) })
afterEach(async () => {
  await Promise.all(children.splice(0).map(async c => c.stop()))
  await nodes.cleanup()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const AGENT = [process.execPath, join(import.meta.dirname, 'fixtures', 'task-agent.mjs')]
const ENV = { CLAWMATRIX_SECRET: SECRET }

/** A `clawmatrix node` process with its own config and state dir; the same name restarts it on the same ports and state. */
async function nodeProcess (nodeId: string, config: Record<string, unknown>): Promise<CliProcess> {
  const file = join(dir, `${nodeId}.json`)
  await writeFile(file, JSON.stringify({ nodeId, listenHost: '127.0.0.1', ...config }))
  const child = runCli(['node', '--config', file, '--state-dir', join(dir, `${nodeId}-state`)], ENV)
  children.push(child)
  await child.waitForOutput(/clawmatrix node \S+ started/, 60_000)
  return child
}

async function cliJson<T> (args: string[]): Promise<T> {
  const { code, output } = await runCliToEnd([...args, '--json'])
  if (code !== 0) throw new Error(`clawmatrix ${args.join(' ')} exited ${code}: ${output}`)
  return JSON.parse(output) as T
}

describe('tasks from the CLI, across restarts and kills', () => {
  it('`handoff --no-wait` returns the id at once; `task --follow` prints progress before the task completes', async () => {
    const office = await nodes.start({ nodeId: 'office', listen: true, agents: [{ id: 'worker', command: AGENT }] })
    const home = await nodes.start({ nodeId: 'home', peers: [{ nodeId: 'office', url: office.wsAddress() }] })
    await waitFor('home to see office', () => home.node.view.nodes().some(n => n.nodeId === 'office' && n.reach === 'direct'))
    const port = new URL(home.node.http.url).port
    const flag = join(dir, 'follow-go')

    const submitted = await cliJson<TaskRecord>(['handoff', 'worker', `wait ${flag}`, '--no-wait', '--port', port])
    expect(['submitted', 'working']).toContain(submitted.state)
    const follow = runCli(['task', submitted.id, '--follow', '--port', port])
    children.push(follow)
    await follow.waitForOutput(/\[progress\] step 1/)
    // The task is still waiting for the flag: progress came before completion.
    expect(follow.output()).not.toMatch(/\bdone\b/)
    expect(home.tasks.get(submitted.id).state).toBe('working')
    await writeFile(flag, '')
    expect(await follow.exited).toBe(0)
    expect(follow.output()).toMatch(/\[progress\] step 1\n(.*\n)*\[progress\] step 2\n(.*\n)*done\n$/)

    const { output } = await runCliToEnd(['tasks', '--port', port])
    expect(output).toMatch(new RegExp(`${submitted.id}\\s+completed\\s+worker@office`))
    const shown = await runCliToEnd(['task', submitted.id, '--port', port])
    expect(shown.output).toMatch(/: completed\n[\s\S]*done\n$/)
  }, 120_000)

  it('a caller killed and restarted mid-task still gets the result', async () => {
    const office = await nodes.start({ nodeId: 'office', listen: true, agents: [{ id: 'worker', command: AGENT }] })
    const proxyPort = await freePort()
    const homeConfig = { proxyPort, listenPort: 0, peers: [{ nodeId: 'office', url: office.wsAddress() }] }
    const home = await nodeProcess('home', homeConfig)
    const port = String(proxyPort)
    const flag = join(dir, 'restart-go')
    const submitted = await waitFor('home to reach office and submit', async () =>
      cliJson<TaskRecord>(['handoff', 'worker', `wait ${flag}`, '--no-wait', '--port', port]), { timeoutMs: 60_000 })
    await waitFor('the task to run on office', () => office.tasks.executor.active === 1)

    home.child.kill('SIGKILL')
    await home.exited
    await writeFile(flag, '')
    await waitFor('office to finish the task without its caller', async () =>
      JSON.parse(await readFile(join(office.stateDir, 'tasks', 'executor', `${submitted.id}.json`), 'utf8')).state === 'completed')

    await nodeProcess('home', homeConfig)
    const delivered = await waitFor('the restarted caller to have the result', async () => {
      const record = await cliJson<TaskRecord>(['task', submitted.id, '--port', port]).catch(() => undefined)
      return record?.state === 'completed' ? record : undefined
    }, { timeoutMs: 60_000 })
    expect(delivered.result).toBe('done')
  }, 180_000)

  it('an executor killed mid-task shows failed on the caller within one heartbeat window, then its restart says why', async () => {
    const listenPort = await freePort()
    const officeConfig = { listen: true, listenPort, proxyPort: 0, agents: [{ id: 'worker', command: AGENT }] }
    const office = await nodeProcess('office', officeConfig)
    const address = (await office.waitForOutput(/(\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/\w+)/))[1]!
    // The default heartbeat: a frozen peer is cut after intervalMs x maxMissed = 45 s.
    const home = await nodes.start({ nodeId: 'home', peers: [{ nodeId: 'office', url: address }] })
    await waitFor('home to see office', () => home.node.view.nodes().some(n => n.nodeId === 'office' && n.reach === 'direct'), { timeoutMs: 60_000 })
    const task = await home.tasks.submit('worker', `wait ${join(dir, 'never')}`)
    await waitFor('the task to run', () => home.tasks.get(task.id).progress.some(p => p.message === 'step 1'))

    office.child.kill('SIGKILL')
    await office.exited
    const { intervalMs, maxMissed } = home.node.config.heartbeat
    const failed = await waitFor('the caller to mark the task failed', () => home.tasks.get(task.id).state === 'failed' ? home.tasks.get(task.id) : undefined, { timeoutMs: intervalMs * maxMissed })
    expect(failed).toMatchObject({ provisional: true, error: { code: 'executor-lost' } })
    expect(failed.error!.message).toMatch(/^office went away while the task was working/)

    await nodeProcess('office', officeConfig)
    const settled = await waitFor('the restarted executor\'s account', () => {
      const record = home.tasks.get(task.id)
      return record.provisional !== true ? record : undefined
    }, { timeoutMs: 90_000 })
    expect(settled).toMatchObject({ state: 'failed', error: { code: 'executor-restarted' } })
    expect(settled.error!.message).toBe('office restarted while the task was working; the run was lost')
  }, 240_000)
})
