import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runCli, runCliToEnd, type CliProcess } from './helpers/cli.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
const children: CliProcess[] = []
let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-work-')) })
afterEach(async () => {
  await Promise.all(children.splice(0).map(async c => c.stop()))
  await nodes.cleanup()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

/** An agent backed by a command: answers with the task reversed and its own name. */
const ECHO_AGENT = [process.execPath, '-e', `
  let input = ''
  process.stdin.on('data', d => { input += d })
  process.stdin.on('end', () => {
    const { task, agent } = JSON.parse(input)
    process.stdout.write(task.split('').reverse().join('') + ' from ' + agent)
  })`]

/** home -> relay-a <-> relay-b <- office: home and office only dial out, each knows only its own relay. */
async function topology (): Promise<{ home: TestNode, office: TestNode, workdir: string }> {
  const workdir = await mkdtemp(join(dir, 'office-'))
  const relayA = await nodes.start({ nodeId: 'relay-a', listen: true })
  const relayB = await nodes.start({ nodeId: 'relay-b', listen: true, peers: [{ nodeId: 'relay-a', url: relayA.wsAddress() }] })
  const home = await nodes.start({ nodeId: 'home', peers: [{ nodeId: 'relay-a', url: relayA.wsAddress() }] })
  const office = await nodes.start({
    nodeId: 'office',
    peers: [{ nodeId: 'relay-b', url: relayB.wsAddress() }],
    agents: [{ id: 'coder', description: 'reverses tasks', command: ECHO_AGENT }],
    toolProxy: { enabled: true, deny: ['edit'], workdir }
  })
  await waitFor('home to reach office through a relay', () =>
    home.node.view.nodes().find(n => n.nodeId === 'office')?.reach === 'relayed')
  return { home, office, workdir }
}

function port (t: TestNode): string {
  return new URL(t.node.http.url).port
}

describe('work through the CLI, across a relayed path', () => {
  it('hands a task to an agent two relays away and prints its reply', async () => {
    const { home } = await topology()
    const { code, output } = await runCliToEnd(['handoff', 'coder', 'hello world', '--port', port(home)])
    expect(output).toBe('dlrow olleh from coder\n')
    expect(code).toBe(0)
    // A node id stands for its only agent; --json has the details.
    const json = await runCliToEnd(['handoff', 'office', 'abc', '--port', port(home), '--json'])
    expect(JSON.parse(json.output)).toMatchObject({ nodeId: 'office', agentId: 'coder', reply: 'cba from coder' })
  })

  it('sends a one-way message, acknowledged as delivered', async () => {
    const { home, office } = await topology()
    const { code, output } = await runCliToEnd(['send', 'coder', 'please', 'review', '--port', port(home)])
    expect(output).toBe('delivered to coder on office\n')
    expect(code).toBe(0)
    const inbox = await readFile(join(office.stateDir, 'inbox', 'coder.jsonl'), 'utf8')
    expect(JSON.parse(inbox.trim())).toMatchObject({ message: 'please review', from: { nodeId: 'home' } })
  })

  it('runs exec, write and read on the remote node, with its output and exit code', async () => {
    const { home, workdir } = await topology()
    const exec = await runCliToEnd(['exec', 'office', 'pwd; echo oops >&2; exit 3', '--port', port(home)])
    expect(exec.output).toContain(workdir)
    expect(exec.output).toContain('oops')
    expect(exec.code).toBe(3)

    const write = await runCliToEnd(['write', 'office', 'notes/a.txt', '--content', 'line 1\nline 2\n', '--port', port(home)])
    expect(write.output).toBe(`wrote 14 bytes to ${join(workdir, 'notes', 'a.txt')}\n`)
    expect(await readFile(join(workdir, 'notes', 'a.txt'), 'utf8')).toBe('line 1\nline 2\n')
    const read = await runCliToEnd(['read', 'office', 'notes/a.txt', '--offset', '2', '--port', port(home)])
    expect(read.output).toBe('line 2\n')

    const tool = await runCliToEnd(['tool', 'office', 'read', '{"path":"notes/a.txt","limit":1}', '--port', port(home), '--json'])
    expect(JSON.parse(tool.output)).toMatchObject({ nodeId: 'office', tool: 'read', output: { content: 'line 1\n' } })
  })

  it('fails fast and clearly: unknown target, denied tool, unknown tool, bad args, this node', async () => {
    const { home } = await topology()
    const unknown = await runCliToEnd(['handoff', 'tester', 'x', '--port', port(home)])
    expect(unknown.code).toBe(1)
    expect(unknown.output).toMatch(/clawmatrix: unknown target "tester": the cluster offers agents \[coder\], nodes \[home, office, relay-a, relay-b\]/)

    const denied = await runCliToEnd(['tool', 'office', 'edit', '{"path":"a","oldText":"x","newText":"y"}', '--port', port(home)])
    expect(denied.code).toBe(1)
    expect(denied.output).toMatch(/denied by policy on office/)

    const unknownTool = await runCliToEnd(['tool', 'office', 'teleport', '{}', '--port', port(home)])
    expect(unknownTool.output).toMatch(/teleport/)
    expect(unknownTool.code).toBe(1)

    const disabled = await runCliToEnd(['exec', 'relay-a', 'true', '--port', port(home)])
    expect(disabled.output).toMatch(/disabled on relay-a/)

    const self = await runCliToEnd(['exec', 'home', 'true', '--port', port(home)])
    expect(self.output).toMatch(/resolves only to this node \(home\)/)

    const badJson = await runCliToEnd(['tool', 'office', 'read', '{nope', '--port', port(home)])
    expect(badJson.code).toBe(2)
  })

  it('Ctrl-C on the caller stops the command on the remote node', async () => {
    const { home, workdir } = await topology()
    const pidFile = join(workdir, 'pid')
    const exec = runCli(['exec', 'office', `echo $$ > ${pidFile}; sleep 60`, '--port', port(home)])
    children.push(exec)
    const pid = Number(await waitFor('the remote shell to start', async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim()))
    exec.child.kill('SIGINT')
    expect(await exec.exited, exec.output()).toBe(130)
    expect(exec.output()).toMatch(/cancelled; the remote work was stopped/)
    await waitFor('the remote shell to be gone', () => !alive(pid))
  })
})

/** Whether a process still runs; a zombie (PID 1 here may not reap) counts as gone. */
function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/\(.*\)/, 'x').split(' ')[2] !== 'Z'
  } catch {
    return false
  }
}

describe('a node shutting down', () => {
  /** office offers an agent and its tools; home dials it. */
  async function pair (): Promise<{ home: TestNode, office: TestNode, workdir: string }> {
    const workdir = await mkdtemp(join(dir, 'office-'))
    const office = await nodes.start({ nodeId: 'office', listen: true, agents: [{ id: 'coder', description: 'reverses tasks', command: ECHO_AGENT }], toolProxy: { enabled: true, workdir } })
    const home = await nodes.start({ nodeId: 'home', peers: [{ nodeId: 'office', url: office.wsAddress() }] })
    await waitFor('home to see office', () => home.node.view.nodes().some(n => n.nodeId === 'office'))
    return { home, office, workdir }
  }

  it('refuses new work by name while its callers still route to it', async () => {
    const { home, office } = await pair()
    office.node.shutdown.begin()
    await expect(home.node.client.exec('office', { command: 'true' })).rejects.toThrow(/^office is shutting down$/)
    await expect(home.node.client.handoff('coder', 'abc', undefined)).rejects.toThrow(/office is shutting down/)
    await expect(home.node.client.send('coder', 'hi')).rejects.toThrow(/office is shutting down/)
  })

  it('announces its leave at once and cancels what it runs for others; callers are told it is shutting down', async () => {
    const { home, office, workdir } = await pair()
    const pidFile = join(workdir, 'pid')
    const running = home.node.client.exec('office', { command: `echo $$ > ${pidFile}; sleep 60` }).catch((err: Error) => err)
    const pid = Number(await waitFor('the remote shell to start', async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim()))
    await office.node.beginShutdown()
    expect(String(await running)).toMatch(/office is shutting down/)
    await waitFor('the remote shell to be gone', () => !alive(pid))
    await waitFor('home to drop office from its view', () => !home.node.view.nodes().some(n => n.nodeId === 'office'))
    await expect(home.node.client.exec('office', { command: 'true' })).rejects.toThrow(/unknown target "office": office is shutting down \(it announced its leave \d+ s ago\)/)
  })
})
