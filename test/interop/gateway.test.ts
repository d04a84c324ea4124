/**
 * clawmatrix inside real OpenClaw gateways (the pinned openclaw package):
 * three gateways, each loading the built plugin (run `npm run build` first;
 * `npm test` does), each with a fake OpenAI upstream as its only LLM:
 *
 *   hub     listens (the node others dial), tag "hub"
 *   worker  dials hub; offers its OpenClaw agent "main" [gpu], the model "worker-model" (its fake upstream)
 *           and a tool proxy (read, write, exec; edit denied)
 *   home    dials hub only; offers nothing, runs no tools for others; its agents use clawmatrix/worker-model
 *
 * Gateways start once for the file, in parallel.
 */
import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import { ClientFactory } from '@a2a-js/sdk/client'
import { Role, TaskState, type Task } from '@a2a-js/sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { FAKE_MODEL, freePort, Gateway, interopRoot, nodeConfig as node, preparePlugin, SECRET } from './helpers/gateway.js'

const STARTUP_MS = 240_000
/** A CLI call loads OpenClaw and the plugin anew: tens of seconds on a busy 2-core machine. */
const CLI_TEST_MS = 180_000

describe('clawmatrix in real OpenClaw gateways', () => {
  let cleanup: () => Promise<void> = async () => {}
  let hub: Gateway
  let worker: Gateway
  let home: Gateway
  let idle: Gateway
  let homeProxyPort: number
  const gateways: Gateway[] = []

  beforeAll(async () => {
    const tmp = await interopRoot()
    cleanup = tmp.cleanup
    const pluginDir = await preparePlugin(tmp.root)
    const hubListen = await freePort()
    const hubUrl = `ws://127.0.0.1:${hubListen}`
    hub = await Gateway.create({ name: 'hub', pluginDir, clawmatrix: await node('hub', { listen: true, listenPort: hubListen, tags: ['hub'] }) }, tmp.root)
    worker = await Gateway.create({
      name: 'worker',
      pluginDir,
      clawmatrix: await node('worker', {
        peers: [{ nodeId: 'hub', url: hubUrl }],
        agents: [{ id: 'main', description: 'Writes and runs code', tags: ['gpu'] }],
        // no baseUrl: served by worker's own OpenClaw provider "fake", its key included
        models: [{ id: 'worker-model', provider: 'fake', upstreamModel: FAKE_MODEL }],
        tags: ['gpu'],
        toolProxy: { enabled: true, allow: ['read', 'write', 'exec', 'cluster_peers'], deny: ['edit'] }
      })
    }, tmp.root)
    // home's agents use the cluster's model through home's own proxy, as `openclaw clawmatrix models` prints it
    homeProxyPort = await freePort()
    home = await Gateway.create({
      name: 'home',
      pluginDir,
      clawmatrix: { ...await node('home', { peers: [{ nodeId: 'hub', url: hubUrl }] }), proxyPort: homeProxyPort },
      providers: {
        clawmatrix: { baseUrl: `http://127.0.0.1:${homeProxyPort}/v1`, apiKey: 'clawmatrix-local', api: 'openai-completions', models: [{ id: 'worker-model', name: 'worker-model (clawmatrix: worker)', input: ['text'] }] }
      },
      model: 'clawmatrix/worker-model'
    }, tmp.root)
    // configured, never started: what the CLI says when no gateway runs
    idle = await Gateway.create({ name: 'idle', pluginDir, clawmatrix: await node('idle', {}) }, tmp.root)
    gateways.push(hub, worker, home, idle)

    await Promise.all([hub, worker, home].map(async g => { await g.start(STARTUP_MS) }))
    console.info(`gateway startup (spawn to ready, 3 in parallel): ${[hub, worker, home].map(g => `${g.name} ${(g.startupMs / 1000).toFixed(1)} s`).join(', ')}`)
    // every check below needs the mesh formed: home reaches worker only through hub's relay
    await Promise.all([hub, worker, home].map(meshFrom))
  }, STARTUP_MS + 30_000)

  afterAll(async () => {
    await Promise.allSettled(gateways.map(async g => { await g.close() }))
    await cleanup()
  }, 60_000)

  /** The gateway's cluster_peers once it knows all three nodes and reaches each of them. */
  async function meshFrom (g: Gateway) {
    return waitFor(`${g.name} to see and reach all three nodes`, async () => {
      const r = await g.invokeTool('cluster_peers')
      const nodes: any[] = r.body.result?.details?.nodes ?? []
      return nodes.length === 3 && nodes.every(n => n.reach !== 'unreachable') ? r : undefined
    }, { timeoutMs: 60_000, intervalMs: 250 })
  }

  // (1) the gateways find each other: home knows only hub, and learns of worker through the mesh
  it('cluster_peers through POST /tools/invoke lists the other gateways', async () => {
    const response = await meshFrom(home)
    expect(response.httpStatus).toBe(200)
    const { details, content } = response.body.result!
    expect(details.self).toBe('home')
    expect(details.nodes.map((n: any) => n.nodeId)).toEqual(['home', 'hub', 'worker'])
    const byId = Object.fromEntries(details.nodes.map((n: any) => [n.nodeId, n]))
    expect(byId.home.reach).toBe('self')
    expect(byId.hub.reach).toBe('direct')
    expect(byId.worker.agents).toEqual([{ id: 'main', description: 'Writes and runs code', tags: ['gpu'] }])
    expect(byId.worker.models.map((m: any) => m.id)).toEqual(['worker-model'])
    expect(byId.worker.toolProxy).toEqual({ enabled: true, allow: ['read', 'write', 'exec', 'cluster_peers'], deny: ['edit'] })
    // what the model reads
    const text = content[0]!.text
    expect(text).toContain('this gateway is node "home"')
    expect(text).toMatch(/node worker\n {2}reach: (direct|relayed via hub)/)
    expect(text).toContain('agents: main [gpu] - Writes and runs code')
    expect(text).toContain('models: clawmatrix/worker-model')
    expect(text).toContain('tools for other nodes: read, write, exec, cluster_peers, except edit')
    expect(JSON.stringify(response.body)).not.toContain(SECRET)

    // every gateway converges on the same membership
    for (const g of [hub, worker]) await meshFrom(g)
  })

  // (6) the live mesh from the running gateway, through the clawmatrix.status gateway method
  it('openclaw clawmatrix status prints the mesh', async () => {
    await meshFrom(home)
    const result = await home.cli(['clawmatrix', 'status'])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^node {6}home /m)
    expect(result.stdout).toContain('cluster (3 nodes)')
    expect(result.stdout).toMatch(/^ {2}hub +direct /m)
    expect(result.stdout).toMatch(/^ {2}worker +(direct|relayed via hub) .*main .*worker-model .*gpu .*read,write,exec,cluster_peers -edit/m)
    expect(result.stdout).toContain('configured peers')
    expect(result.stdout + result.stderr).not.toContain(SECRET)
  }, CLI_TEST_MS)

  it('openclaw clawmatrix status says so when no gateway is running', async () => {
    const result = await idle.cli(['clawmatrix', 'status', '--timeout', '3000'])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/^clawmatrix: no OpenClaw gateway answered: Gateway not reachable at ws:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)\.; clawmatrix runs inside the gateway: start it with `openclaw gateway run`, or point at it with --url\/--port$/m)
  }, CLI_TEST_MS)

  it('openclaw clawmatrix init, invite and join install a managed membership in the gateway\'s state', async () => {
    const authorityDir = join(idle.dir, 'authority')
    const init = await idle.cli(['clawmatrix', 'init', '--authority-dir', authorityDir])
    expect(init.code, init.stderr).toBe(0)
    expect(init.stdout).toMatch(/authority: ed25519:[\w-]{43}/)
    const invite = await idle.cli(['clawmatrix', 'invite', 'idle', '--tags', 'ops', '--authority-dir', authorityDir])
    expect(invite.code, invite.stderr).toBe(0)
    const token = invite.stdout.trim()
    expect(token).toMatch(/^clawmatrix-invite-v1\.[\w-]+$/)
    const joined = await idle.cli(['clawmatrix', 'join', token])
    expect(joined.code, joined.stderr).toBe(0)
    expect(joined.stdout + joined.stderr).not.toContain(token)
    const state = JSON.parse(await readFile(join(idle.dir, 'state', 'clawmatrix', 'membership.json'), 'utf8'))
    expect(state.certificate).toMatchObject({ nodeId: 'idle', tags: ['ops'] })
  }, CLI_TEST_MS)

  it('openclaw clawmatrix models prints the provider entry for clawmatrix/<model>', async () => {
    await waitFor('home to see worker-model', async () =>
      (await home.invokeTool('cluster_peers')).body.result?.details?.nodes?.some((n: any) => n.models.length > 0), { timeoutMs: 30_000, intervalMs: 250 })
    const result = await home.cli(['clawmatrix', 'models', '--json'])
    expect(result.code, result.stderr).toBe(0)
    const entry = JSON.parse(result.stdout)
    expect(entry).toMatchObject({
      baseUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/v1$/),
      api: 'openai-completions',
      models: [{ id: 'worker-model', name: 'worker-model (clawmatrix: worker)', input: ['text'] }]
    })
  }, CLI_TEST_MS)

  it('an unknown target is a clear tool error listing what the cluster offers', async () => {
    const node = await home.invokeTool('cluster_exec', { node: 'nowhere', command: 'true' })
    expect(node.httpStatus).toBe(400)
    expect(node.body.error?.message).toMatch(/unknown node "nowhere": the cluster has nodes \[home, hub, worker\]/)

    const target = await home.invokeTool('cluster_handoff', { target: 'tags:quantum', task: 'x' })
    expect(target.httpStatus).toBe(400)
    expect(target.body.error?.message).toMatch(/unknown target "tags:quantum": the cluster offers agents \[main\], nodes \[home, hub, worker\]/)

    const self = await home.invokeTool('cluster_send', { target: 'home', message: 'hi' })
    expect(self.httpStatus).toBe(400)
    expect(self.body.error?.message).toMatch(/"home" resolves only to this node \(home\)/)
  })

  it('a node\'s tool proxy policy refuses early with the setting to change', async () => {
    const off = await worker.invokeTool('cluster_exec', { node: 'home', command: 'true' })
    expect(off.httpStatus).toBe(403)
    expect(off.body.error?.message).toMatch(/tool proxy disabled on home/)

    const denied = await home.invokeTool('cluster_tool', { node: 'worker', tool: 'edit', args: {} })
    expect(denied.httpStatus).toBe(403)
    expect(denied.body.error?.message).toMatch(/tool "edit" denied by policy on worker \(toolProxy.deny\)/)
  })

  it('cluster_tool reaches worker gateway\'s own tools through its /tools/invoke', async () => {
    // cluster_peers is a gateway tool like any other there: answered from worker's point of view.
    const peers = await home.invokeTool('cluster_tool', { node: 'worker', tool: 'cluster_peers', args: {} })
    expect(peers.httpStatus, JSON.stringify(peers.body)).toBe(200)
    expect(JSON.stringify(peers.body.result)).toMatch(/this gateway is node \\"worker\\"/)
  })

  // (2) exec and files on worker, from home, through worker's tool proxy
  it('cluster_exec, cluster_write and cluster_read run on worker', async () => {
    const exec = await home.invokeTool('cluster_exec', { node: 'worker', command: 'echo $((6*7)); echo oops >&2; exit 3', timeout: 60 })
    expect(exec.httpStatus, JSON.stringify(exec.body)).toBe(200)
    expect(exec.body.result!.content[0]!.text).toMatch(/^exec on worker \(exitCode: 3/)
    expect(exec.body.result!.content[0]!.text).toContain('--- stdout ---\n42\n')
    expect(exec.body.result!.content[0]!.text).toContain('--- stderr ---\noops\n')
    expect(exec.body.result!.details).toMatchObject({ node: 'worker', tool: 'exec', exitCode: 3, truncated: false })

    const write = await home.invokeTool('cluster_write', { node: 'worker', path: 'notes/from-home.txt', content: 'written by home\n' })
    expect(write.httpStatus, JSON.stringify(write.body)).toBe(200)
    const read = await home.invokeTool('cluster_read', { node: 'worker', path: 'notes/from-home.txt' })
    expect(read.httpStatus, JSON.stringify(read.body)).toBe(200)
    expect(read.body.result!.content[0]!.text).toMatch(/^read on worker .*\nwritten by home\n$/)
    // the file is on worker's machine, in the directory worker's gateway runs its tools in
    expect(await readFile(read.body.result!.details.path, 'utf8')).toBe('written by home\n')
  })

  // Before the hand-off: after an agent run OpenClaw plans session maintenance, and on a busy machine that holds
  // the agent's SQLite store (and the gateway's main thread) longer than the 15 s a sender waits for "delivered".
  it('cluster_send delivers a message into worker\'s agent session', { timeout: 120_000 }, async () => {
    const before = worker.upstream.requests.length
    const response = await home.invokeTool('cluster_send', { target: 'main', message: 'delta epsilon' })
    expect(response.httpStatus, JSON.stringify(response.body)).toBe(200)
    expect(response.body.result!.content[0]!.text).toBe('delivered to main on worker')
    // the message starts a turn in worker's main session
    await waitFor('worker\'s model to see the message', () =>
      worker.upstream.requests.slice(before).some(r => JSON.stringify(r.body?.messages ?? '').includes('delta epsilon')), { timeoutMs: 60_000, intervalMs: 250 })
  })

  // (3) a task handed to worker's OpenClaw agent runs a real agent turn there, on worker's fake model.
  // Right after cluster_send's turn, worker's gateway stalls its thread in synchronous SQLite state writes (each
  // waiting up to 5 s for OpenClaw's own store worker): worker now answers `accepted` before it asks OpenClaw to
  // start the run, and a last candidate's accept is awaited as long as any silence (60 s), not 15 s.
  it('cluster_handoff runs a task on worker\'s agent and brings back its answer', { timeout: 240_000 }, async () => {
    // worker's model answers this task recognisably (OpenClaw adds context of its own to the prompt)
    worker.upstream.reply = request => JSON.stringify(request.body?.messages ?? '').includes('alpha beta gamma') ? { chunks: ['worker did: ', 'alpha beta gamma'] } : {}
    // a real agent turn on a loaded machine, after the session maintenance the previous check's turn planned
    const response = await home.invokeTool('cluster_handoff', { target: 'tags:gpu', task: 'alpha beta gamma', context: 'from the interop test' }, 200_000)
    expect(response.httpStatus, JSON.stringify(response.body)).toBe(200)
    expect(response.body.result!.content[0]!.text).toMatch(/^main on worker answered:\n\nworker did: alpha beta gamma\n\n\(contextId [\w-]+: pass it to cluster_handoff to continue this conversation\)$/)
    expect(response.body.result!.details).toMatchObject({ node: 'worker', agent: 'main', state: 'completed' })
    const prompt = JSON.stringify(worker.upstream.requests.at(-1)!.body.messages)
    // the caller by its name and the session that handed it off
    expect(prompt).toContain('[task handed off through clawmatrix from home/agent:main:main]')
    expect(prompt).toContain('from the interop test')
  })

  // (3b) tasks: wait:false returns at once; the answer comes back into the calling session, and a follow-up with the
  // contextId lands in the same session on worker, which holds the earlier turn
  it('cluster_handoff wait:false returns a task id at once; the answer arrives in the calling session and through cluster_task; contextId continues it', { timeout: 240_000 }, async () => {
    const told = (request: any): string => JSON.stringify(request.body?.messages ?? '')
    worker.upstream.reply = request => told(request).includes('zeta eta theta') && !told(request).includes('[clawmatrix task')
      ? { chunks: ['worker did: ', 'zeta eta theta'] }
      : {}
    const response = await home.invokeTool('cluster_handoff', { target: 'tags:gpu', task: 'zeta eta theta', wait: false })
    expect(response.httpStatus, JSON.stringify(response.body)).toBe(200)
    const { taskId, contextId } = response.body.result!.details
    expect(response.body.result!.content[0]!.text).toMatch(new RegExp(`^task ${taskId} handed to main on worker \\(contextId ${contextId}\\); its answer will be delivered into this session`))
    expect(['submitted', 'working']).toContain(response.body.result!.details.state)

    // home's session gets the answer as a turn: home's model (clawmatrix/worker-model, served by worker's upstream) reads it
    const announced = await waitFor('the answer to reach home\'s session', () =>
      worker.upstream.requests.find(r => told(r).includes(`[clawmatrix task ${taskId} completed`)), { timeoutMs: 150_000, intervalMs: 250 })
    expect(told(announced)).toContain('worker did: zeta eta theta')
    const status = await home.invokeTool('cluster_task', { action: 'status', id: taskId })
    expect(status.body.result!.content[0]!.text).toMatch(/^main on worker answered:\n\nworker did: zeta eta theta\n/)
    const list = await home.invokeTool('cluster_task', { action: 'list' })
    expect(list.body.result!.content[0]!.text).toContain(`${taskId} completed main@worker: zeta eta theta`)

    worker.upstream.reply = request => told(request).includes('iota kappa') ? { chunks: ['second turn done'] } : {}
    const second = await home.invokeTool('cluster_handoff', { contextId, task: 'iota kappa' }, 200_000)
    expect(second.httpStatus, JSON.stringify(second.body)).toBe(200)
    expect(second.body.result!.content[0]!.text).toMatch(/^main on worker answered:\n\nsecond turn done\n/)
    expect(second.body.result!.details.contextId).toBe(contextId)
    // the same OpenClaw session on worker: the model is given the earlier turn with the new one
    const prompt = told(worker.upstream.requests.filter(r => told(r).includes('iota kappa') && !told(r).includes('[clawmatrix task')).at(-1))
    expect(prompt).toContain('zeta eta theta')
    expect(prompt).toContain('worker did: zeta eta theta')
  })

  // (3c) the A2A endpoint of home's gateway: the official client reaches worker's OpenClaw agent through the mesh
  it('the official A2A client sends a message to worker\'s agent through home\'s endpoint and reads the task back', { timeout: 240_000 }, async () => {
    worker.upstream.reply = request => JSON.stringify(request.body?.messages ?? '').includes('lambda mu') ? { chunks: ['worker did: ', 'lambda mu'] } : {}
    const client = await new ClientFactory().createFromUrl(`http://127.0.0.1:${homeProxyPort}/a2a/main/`)
    const message: any = { messageId: randomUUID(), role: Role.ROLE_USER, parts: [{ content: { $case: 'text', value: 'lambda mu' }, metadata: undefined, filename: '', mediaType: '' }], contextId: '', taskId: '', metadata: undefined, extensions: [], referenceTaskIds: [] }
    const task = await client.sendMessage({ message } as any) as Task
    const answer = (t: Task): string => t.artifacts.flatMap(a => a.parts).map(p => p.content?.$case === 'text' ? p.content.value : '').join('')
    expect(task.status?.state, JSON.stringify(task)).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(answer(task)).toBe('worker did: lambda mu')
    expect(task.metadata).toMatchObject({ agentId: 'main', nodeId: 'worker' })
    const read = await client.getTask({ id: task.id, historyLength: 10 } as any)
    expect(read.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(answer(read)).toBe('worker did: lambda mu')
  })

  // (4) an agent on home runs on clawmatrix/worker-model: home's proxy -> the swarm -> worker's upstream
  it('an agent turn on home with clawmatrix/worker-model is served by worker', async () => {
    worker.upstream.reply = request => JSON.stringify(request.body?.messages ?? '').includes('one two three') ? { chunks: ['served ', 'by worker'] } : {}
    const homeBefore = home.upstream.requests.length
    const result = await home.cli(['agent', '--agent', 'main', '--message', 'one two three', '--json'], 120_000)
    expect(result.code, result.stderr + result.stdout).toBe(0)
    expect(result.stdout).toContain('served by worker')
    expect(home.upstream.requests.length).toBe(homeBefore)
  }, CLI_TEST_MS)

  // (5) lives in 'a node's tool proxy policy refuses ...' above: the caller refuses from the card; worker's
  // own refusal of the same call is covered by test/work.test.ts.
})
