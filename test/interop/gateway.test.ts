/**
 * clawmatrix inside real OpenClaw gateways (the pinned openclaw package):
 * three gateways, each loading the built plugin (run `npm run build` first;
 * `npm test` does), each with a fake OpenAI upstream as its only LLM:
 *
 *   hub     listens (the relay others dial), tag "hub"
 *   worker  dials hub; offers agent "coder" [gpu], model "worker-model" and a tool proxy (read, write, exec; edit denied)
 *   home    dials hub only; offers nothing, runs no tools for others
 *
 * Gateways start once for the file, in parallel. The checks that need the
 * stream protocols are marked TODO below, in the order of the issue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { freePort, Gateway, interopRoot, preparePlugin } from './helpers/gateway.js'

const SECRET = 'interop-secret-0123456789abcdef'
const STARTUP_MS = 180_000

describe('clawmatrix in real OpenClaw gateways', () => {
  let cleanup: () => Promise<void> = async () => {}
  let hub: Gateway
  let worker: Gateway
  let home: Gateway
  let idle: Gateway
  const gateways: Gateway[] = []

  beforeAll(async () => {
    const tmp = await interopRoot()
    cleanup = tmp.cleanup
    const pluginDir = await preparePlugin(tmp.root)
    const hubListen = await freePort()
    const hubUrl = `ws://127.0.0.1:${hubListen}`
    const node = async (nodeId: string, extra: Record<string, unknown>): Promise<Record<string, unknown>> => ({
      nodeId,
      secret: SECRET,
      listenHost: '127.0.0.1',
      proxyPort: await freePort(),
      // quick convergence: peers re-announce every second
      heartbeat: { intervalMs: 1000 },
      reconnect: { minDelayMs: 100, maxDelayMs: 1000 },
      ...extra
    })
    hub = await Gateway.create({ name: 'hub', pluginDir, clawmatrix: await node('hub', { listen: true, listenPort: hubListen, tags: ['hub'] }) }, tmp.root)
    worker = await Gateway.create({
      name: 'worker',
      pluginDir,
      clawmatrix: await node('worker', {
        peers: [{ nodeId: 'hub', url: hubUrl }],
        agents: [{ id: 'coder', description: 'Writes and runs code', tags: ['gpu'] }],
        models: [{ id: 'worker-model', provider: 'fake' }],
        tags: ['gpu'],
        toolProxy: { enabled: true, allow: ['read', 'write', 'exec'], deny: ['edit'] }
      })
    }, tmp.root)
    home = await Gateway.create({ name: 'home', pluginDir, clawmatrix: await node('home', { peers: [{ nodeId: 'hub', url: hubUrl }] }) }, tmp.root)
    // configured, never started: what the CLI says when no gateway runs
    idle = await Gateway.create({ name: 'idle', pluginDir, clawmatrix: await node('idle', {}) }, tmp.root)
    gateways.push(hub, worker, home, idle)

    await Promise.all([hub, worker, home].map(async g => { await g.start(STARTUP_MS) }))
    console.info(`gateway startup (spawn to ready, 3 in parallel): ${[hub, worker, home].map(g => `${g.name} ${(g.startupMs / 1000).toFixed(1)} s`).join(', ')}`)
  }, STARTUP_MS + 30_000)

  afterAll(async () => {
    await Promise.allSettled(gateways.map(async g => { await g.close() }))
    await cleanup()
  }, 60_000)

  // (1) the gateways find each other: home knows only hub, and learns of worker through the mesh
  it('cluster_peers through POST /tools/invoke lists the other gateways', async () => {
    const response = await waitFor('home to see all three nodes', async () => {
      const r = await home.invokeTool('cluster_peers')
      return r.body.result?.details?.nodes?.length === 3 ? r : undefined
    }, { timeoutMs: 30_000, intervalMs: 250 })
    expect(response.httpStatus).toBe(200)
    const { details, content } = response.body.result!
    expect(details.self).toBe('home')
    expect(details.nodes.map((n: any) => n.nodeId)).toEqual(['home', 'hub', 'worker'])
    const byId = Object.fromEntries(details.nodes.map((n: any) => [n.nodeId, n]))
    expect(byId.home.reach).toBe('self')
    expect(byId.hub.reach).toBe('direct')
    expect(byId.worker.agents).toEqual([{ id: 'coder', description: 'Writes and runs code', tags: ['gpu'] }])
    expect(byId.worker.models.map((m: any) => m.id)).toEqual(['worker-model'])
    expect(byId.worker.toolProxy).toEqual({ enabled: true, allow: ['read', 'write', 'exec'], deny: ['edit'] })
    // what the model reads
    const text = content[0]!.text
    expect(text).toContain('this gateway is node "home"')
    expect(text).toMatch(/node worker\n {2}reach: (direct|relayed via hub)/)
    expect(text).toContain('agents: coder [gpu] - Writes and runs code')
    expect(text).toContain('models: clawmatrix/worker-model')
    expect(text).toContain('tools for other nodes: read, write, exec, except edit')
    expect(JSON.stringify(response.body)).not.toContain(SECRET)

    // every gateway converges on the same membership
    for (const g of [hub, worker]) {
      await waitFor(`${g.name} to see all three nodes`, async () =>
        (await g.invokeTool('cluster_peers')).body.result?.details?.nodes?.length === 3, { timeoutMs: 30_000, intervalMs: 250 })
    }
  })

  // (6) the live mesh from the running gateway, through the clawmatrix.status gateway method
  it('openclaw clawmatrix status prints the mesh', async () => {
    await waitFor('home to see all three nodes', async () =>
      (await home.invokeTool('cluster_peers')).body.result?.details?.nodes?.length === 3, { timeoutMs: 30_000, intervalMs: 250 })
    const result = await home.cli(['clawmatrix', 'status'])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^node {6}home /m)
    expect(result.stdout).toContain('cluster (3 nodes)')
    expect(result.stdout).toMatch(/^ {2}hub +direct /m)
    expect(result.stdout).toMatch(/^ {2}worker +(direct|relayed via hub) .*coder .*worker-model .*gpu .*read,write,exec -edit/m)
    expect(result.stdout).toContain('configured peers')
    expect(result.stdout + result.stderr).not.toContain(SECRET)
  })

  it('openclaw clawmatrix status says so when no gateway is running', async () => {
    const result = await idle.cli(['clawmatrix', 'status', '--timeout', '3000'])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/clawmatrix: no OpenClaw gateway answered .*start it with `openclaw gateway run`/)
  })

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
  })

  it('an unknown target is a clear tool error listing what the cluster offers', async () => {
    const node = await home.invokeTool('cluster_exec', { node: 'nowhere', command: 'true' })
    expect(node.httpStatus).toBe(400)
    expect(node.body.error?.message).toMatch(/unknown node "nowhere": the cluster has nodes \[home, hub, worker\]/)

    const target = await home.invokeTool('cluster_handoff', { target: 'tags:quantum', task: 'x' })
    expect(target.httpStatus).toBe(400)
    expect(target.body.error?.message).toMatch(/unknown target "tags:quantum": the cluster offers agents \[coder\], nodes \[home, hub, worker\]/)
  })

  it('a node\'s tool proxy policy refuses early with the setting to change', async () => {
    const off = await worker.invokeTool('cluster_exec', { node: 'home', command: 'true' })
    expect(off.httpStatus).toBe(403)
    expect(off.body.error?.message).toMatch(/tool proxy disabled on home/)

    const denied = await home.invokeTool('cluster_tool', { node: 'worker', tool: 'edit', args: {} })
    expect(denied.httpStatus).toBe(403)
    expect(denied.body.error?.message).toMatch(/tool "edit" denied by policy on worker \(toolProxy.deny\)/)
  })

  it('tools whose protocol is not there yet say so', async () => {
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['cluster_handoff', { target: 'coder', task: 'say hi' }, /cluster_handoff is not available yet: .*no hand-off protocol/],
      ['cluster_send', { target: 'worker', message: 'hi' }, /cluster_send is not available yet: .*no send protocol/],
      ['cluster_exec', { node: 'worker', command: 'echo hi' }, /cluster_exec is not available yet: .*no tool proxy protocol/],
      ['cluster_read', { node: 'worker', path: 'a.txt' }, /cluster_read is not available yet/],
      ['cluster_write', { node: 'worker', path: 'a.txt', content: 'x' }, /cluster_write is not available yet/],
      ['cluster_tool', { node: 'worker', tool: 'read', args: { path: 'a.txt' } }, /cluster_tool is not available yet/]
    ]
    for (const [tool, args, message] of cases) {
      const response = await home.invokeTool(tool, args)
      expect(response.httpStatus, tool).toBe(400)
      expect(response.body.error?.message, tool).toMatch(message)
    }
  })

  // TODO(tool proxy): (2) cluster_exec on worker from home: `echo $((6*7))` -> stdout "42", exitCode 0 in details;
  //   a command past its timeout is killed; cluster_write then cluster_read round-trips a file in worker's tool dir.
  it.todo('cluster_exec runs a command on worker and returns its output')
  // TODO(hand-off): (3) cluster_handoff to "coder" (and to tags:gpu) from home runs a turn on worker's fake model;
  //   the reply comes back in content; cancelling the call stops the remote run.
  it.todo('cluster_handoff runs a task on the coder agent of worker')
  // TODO(send): cluster_send delivers into worker's agent session.
  it.todo('cluster_send delivers a message to an agent on worker')
  // TODO(model proxy): (4) with models.providers.clawmatrix from `openclaw clawmatrix models`, an agent on home
  //   set to clawmatrix/worker-model completes `openclaw agent --agent main --message ... --json`, answered by
  //   worker's fake upstream (check worker.upstream.requests).
  it.todo('an agent turn on home with clawmatrix/worker-model is served by worker')
  // TODO(tool proxy): (5) the remote node refuses a denied tool itself (bypassing the local pre-check), and a
  //   tool proxy turned off at runtime.
  it.todo('worker refuses a denied tool with a clear error')
})
