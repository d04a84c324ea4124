/**
 * The OpenClaw plugin without a gateway: the manifest against the code it
 * describes, what register() declares (and that it starts nothing), the
 * port clash check, and the tools against real nodes. Real gateways are in
 * test/interop/gateway.test.ts.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { access, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config/load.js'
import { buildManifest, manifestText, TOOL_NAMES } from '../src/openclaw/manifest.js'
import { checkPortClash } from '../src/openclaw/ports.js'
import { registerClawmatrix, SERVICE_ID, STOP_WAIT_MS } from '../src/openclaw/plugin.js'
import { MeshRuntime } from '../src/openclaw/runtime.js'
import { clusterTools } from '../src/openclaw/tools/index.js'
import { ToolAuthorizationError, ToolInputError } from '../src/openclaw/errors.js'
import { handoffMessage, lastAssistantText, OpenClawAgentRunner, OpenClawMessageSink, subagentIn, type SubagentRuntime } from '../src/openclaw/host.js'
import { announceTask } from '../src/openclaw/task-delivery.js'
import { exposeProviderKey, openclawModelTargets, PROVIDER_KEY_ENV, providerEntry } from '../src/openclaw/models.js'
import { clawmatrixProvider } from '../src/openclaw/provider.js'
import { openclawAgentIds, unknownAgentWarnings } from '../src/openclaw/agents.js'
import { VERSION } from '../src/version.js'
import { SECRET, testNodes } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const ROOT = new URL('../', import.meta.url)

// The provider's catalog loads this OpenClaw module on first use; loaded here, before any node starts, since
// loading it holds the event loop for seconds on a busy machine, longer than these nodes' 500 ms heartbeats allow.
await import('openclaw/plugin-sdk/provider-catalog-live-runtime' as string)

/** The config's fields and their JSON types, as docs/configuration.md describes them. */
const CONFIG_SHAPE = {
  nodeId: 'string',
  secret: 'string',
  secrets: 'string[]',
  authority: 'string',
  listen: 'boolean',
  listenHost: 'string',
  listenPort: 'integer',
  tls: { certFile: 'string', keyFile: 'string' },
  announceAddresses: 'string[]',
  peers: 'object[]',
  agents: 'object[]',
  models: 'object[]',
  tags: 'string[]',
  proxyHost: 'string',
  proxyPort: 'integer',
  proxyToken: 'string',
  toolProxy: { enabled: 'boolean', allow: 'string[]', deny: 'string[]', maxOutputBytes: 'integer', workdir: 'string', allowFrom: 'string[]' },
  modelRouting: { cooldownFailures: 'integer', cooldownMs: 'integer', reuseStreams: 'boolean', idleStreamMs: 'integer', idleStreamsPerHost: 'integer', probeAfterMs: 'integer', probeTimeoutMs: 'integer' },
  heartbeat: { intervalMs: 'integer', maxMissed: 'integer' },
  reconnect: { minDelayMs: 'integer', maxDelayMs: 'integer' },
  limits: { upgradesPerIpPerMinute: 'integer', pendingHandshakesPerIp: 'integer', relayedBytesPerMemberPerMinute: 'integer' },
  mesh: { mode: 'on-demand|full', idleCloseMs: 'integer', relays: 'integer', cardsPerInterval: 'integer' }
}

/** A JSON Schema as field names and types: objects by their fields, arrays as `<item type>[]`, enums as `a|b`. */
function schemaShape (schema: any): unknown {
  if (schema.type === 'object' && schema.properties != null) {
    return Object.fromEntries(Object.entries(schema.properties).map(([field, sub]) => [field, schemaShape(sub)]))
  }
  if (schema.type === 'array') return `${schema.items?.type ?? 'any'}[]`
  if (Array.isArray(schema.enum)) return schema.enum.join('|')
  return schema.type
}

describe('openclaw.plugin.json', () => {
  it('is the committed output of the generator, so it matches the code', async () => {
    const onDisk = await readFile(new URL('openclaw.plugin.json', ROOT), 'utf8')
    expect(onDisk, 'openclaw.plugin.json is stale: run `npm run build` and commit it').toBe(manifestText(VERSION))
  })

  it('carries the config fields, the eight tools and the CLI command', () => {
    const manifest = buildManifest(VERSION)
    expect(manifest.id).toBe('clawmatrix')
    // The config as OpenClaw validates it, written out by hand (not from ConfigSchema): a field added,
    // removed or retyped in one and not the other, or lost on the way to JSON, fails here.
    expect(schemaShape(manifest.configSchema)).toEqual(CONFIG_SHAPE)
    expect(manifest.configSchema).toMatchObject({ type: 'object', additionalProperties: false, required: ['nodeId'] })
    // secret is not in the schema's required list so a gateway that joined a managed cluster needs none; parseConfig requires it otherwise
    expect(manifest.contracts.tools).toEqual(['cluster_peers', 'cluster_handoff', 'cluster_send', 'cluster_exec', 'cluster_read', 'cluster_write', 'cluster_tool', 'cluster_task'])
    expect(manifest.cliCommands).toEqual([{ name: 'clawmatrix', description: expect.any(String), hasSubcommands: true }])
    expect(manifest.uiHints.secret).toMatchObject({ sensitive: true })
    expect(manifest.uiHints.secrets).toMatchObject({ sensitive: true })
    expect(manifest.activation).toEqual({ onStartup: true })
  })

  it('has a UI hint only for fields the config has', () => {
    // Each hint's path, walked down the manifest's own schema: a hint for a field that does not exist fails.
    const { uiHints, configSchema } = buildManifest(VERSION)
    const missing = Object.keys(uiHints).filter(path => path.split('.').reduce<any>((schema, field) => schema?.properties?.[field], configSchema) == null)
    expect(missing).toEqual([])
  })

  it('lists exactly the tools the plugin registers', () => {
    expect(clusterTools({ runtime: new MeshRuntime(), caller: {} }).map(t => t.name)).toEqual([...TOOL_NAMES])
  })

  it('is shipped: package.json points OpenClaw at the built entry and pins the host', async () => {
    const pkg = JSON.parse(await readFile(new URL('package.json', ROOT), 'utf8'))
    expect(pkg.openclaw.extensions).toEqual(['./dist/openclaw/index.js'])
    expect(pkg.files).toContain('openclaw.plugin.json')
    expect(pkg.devDependencies.openclaw).toBe('2026.9.6')
    expect(pkg.peerDependencies.openclaw).toBe('2026.9.6')
    // the provider OpenClaw loads without the plugin is built, and shipped in dist/
    const manifest = buildManifest(VERSION)
    expect(manifest.providerCatalogEntry).toBe('./dist/openclaw/provider-discovery.js')
    await access(new URL(manifest.providerCatalogEntry, ROOT))
    expect(manifest.setup.providers).toEqual([{ id: 'clawmatrix', envVars: ['CLAWMATRIX_PROVIDER_KEY'] }])
  })
})

/** Records what register() declares, as OpenClaw's api object would receive it. */
function recordingApi (pluginConfig: unknown) {
  const calls = { services: [] as any[], tools: [] as any[], methods: [] as any[], cli: [] as any[], providers: [] as any[], hooks: [] as any[] }
  const api = {
    pluginConfig,
    registerService: (service: any) => calls.services.push(service),
    registerTool: (tool: any, opts: any) => calls.tools.push({ tool, opts }),
    registerGatewayMethod: (name: string, handler: any, opts: any) => calls.methods.push({ name, handler, opts }),
    registerCli: (registrar: any, opts: any) => calls.cli.push({ registrar, opts }),
    registerProvider: (provider: any) => calls.providers.push(provider),
    on: (name: string, handler: any) => calls.hooks.push({ name, handler })
  }
  return { api: api as any, calls }
}

describe('register(api)', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => { await Promise.all(cleanups.splice(0).map(async c => { await c() })) })

  it('declares the service, the tools, the gateway methods and the CLI, and starts nothing', () => {
    const runtime = new MeshRuntime()
    const { api, calls } = recordingApi({ nodeId: 'a', secret: SECRET })
    // OpenClaw's CLI stops ("Plugin CLI preparation inputs changed") when loading plugins changed the environment
    const before = JSON.stringify(process.env)
    registerClawmatrix(api, runtime)
    registerClawmatrix(api, runtime) // OpenClaw registers more than once
    expect(JSON.stringify(process.env)).toBe(before)
    expect(runtime.current).toBeUndefined()
    expect(calls.services.map(s => s.id)).toEqual([SERVICE_ID, SERVICE_ID])
    expect(calls.tools[0].opts).toEqual({ names: [...TOOL_NAMES] })
    const tools = calls.tools[0].tool({ agentId: 'main', sessionKey: 'agent:main:main' })
    expect(tools.map((t: any) => t.name)).toEqual([...TOOL_NAMES])
    expect(calls.methods.slice(0, 2).map(m => [m.name, m.opts.scope])).toEqual([['clawmatrix.status', 'operator.read'], ['clawmatrix.models', 'operator.read']])
    expect(calls.cli[0].opts.descriptors).toEqual([expect.objectContaining({ name: 'clawmatrix', hasSubcommands: true })])
    expect(calls.providers[0]).toMatchObject({ id: 'clawmatrix', auth: [] })
    expect(calls.hooks.map(h => h.name)).toEqual(['gateway_start', 'gateway_start'])
  })

  it('the service starts the node under <stateDir>/clawmatrix and stops it; a bad config fails start with the field', async () => {
    const runtime = new MeshRuntime()
    const stateDir = await mkdtemp(join(tmpdir(), 'clawmatrix-plugin-'))
    cleanups.push(async () => { await runtime.stop(); await rm(stateDir, { recursive: true, force: true }) })
    const { api, calls } = recordingApi({ nodeId: 'alpha', secret: SECRET, listenHost: '127.0.0.1', proxyPort: 0, agents: [{ id: 'main', description: 'x' }, { id: 'ghost', description: 'y' }] })
    registerClawmatrix(api, runtime)
    const service = calls.services[0]
    const lines: string[] = []
    const ctx = { config: { gateway: { port: 18789 } }, stateDir, logger: { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) } }
    await service.start(ctx)
    expect(runtime.current?.config.nodeId).toBe('alpha')
    // the node's endpoint serves the cluster's agents over A2A, as `clawmatrix run` does
    const card = await fetch(`${runtime.current!.http.url}/a2a/main/.well-known/agent-card.json`).then(async r => r.json() as Promise<any>)
    expect(card).toMatchObject({ name: 'main', url: `${runtime.current!.http.url}/a2a/main`, skills: [{ id: 'main' }] })
    expect(lines.some(l => /clawmatrix node alpha started/.test(l))).toBe(true)
    // an offered agent this gateway does not have is a warning naming the ones it has (none configured: main)
    expect(lines.filter(l => /is not an agent of this OpenClaw gateway/.test(l))).toEqual([expect.stringMatching(/^clawmatrix agents: "ghost" is not an agent of this OpenClaw gateway, which has "main"; .*agents\.ownership: "explicit"/)])
    const status: any[] = []
    await calls.methods[0].handler({ respond: (...args: any[]) => status.push(args) })
    expect(status[0][0]).toBe(true)
    expect(status[0][1].nodeId).toBe('alpha')
    // the gateway's drain begins (its gateway_start signal aborts): the node refuses new work from then on
    const drain = new AbortController()
    calls.hooks.find(h => h.name === 'gateway_start').handler({ port: 18789 }, { abortSignal: drain.signal })
    expect(runtime.current!.shutdown.shuttingDown).toBe(false)
    drain.abort()
    await waitFor('the node to be shutting down', () => runtime.current!.shutdown.shuttingDown)
    expect(runtime.current!.shutdown.refusal()).toBe('alpha is shutting down')
    await service.stop(ctx)
    expect(runtime.current).toBeUndefined()
    // the service's stop returns within STOP_WAIT_MS (OpenClaw's cleanup budget is 5 s); the node may still be stopping
    await runtime.stop()
    await expect(fetch(`${new URL(card.url).origin}/.well-known/agent-card.json`)).rejects.toThrow()
    await calls.methods[0].handler({ respond: (...args: any[]) => status.push(args) })
    expect(status[1]).toEqual([false, undefined, { code: 'UNAVAILABLE', message: expect.stringMatching(/clawmatrix node is not running on this gateway/) }])

    const bad = recordingApi({ nodeId: 'alpha', secret: SECRET, listenPort: 70000 })
    registerClawmatrix(bad.api, runtime)
    await expect(bad.calls.services[0].start(ctx)).rejects.toThrow(/listenPort: got 70000; expected <= 65535/)
    const peers = await clusterTools({ runtime, caller: {} })[0]!.execute('call-1', {}).catch((err: Error) => err)
    expect(peers).toBeInstanceOf(ToolInputError)
    expect((peers as Error).message).toMatch(/failed to start: invalid clawmatrix config in plugins\.entries\.clawmatrix\.config:\n {2}- listenPort: got 70000/)
    expect((peers as Error).message).not.toContain(SECRET)
  })
})

describe('the service\'s stop', () => {
  it('returns within STOP_WAIT_MS while the node is still stopping: OpenClaw gives a plugin\'s cleanup 5 s on a reload', async () => {
    let finish = (): void => {}
    const stopping = new Promise<void>(resolve => { finish = resolve })
    let stopped = false
    const runtime = { stop: async () => { await stopping; stopped = true } } as unknown as MeshRuntime
    const { api, calls } = recordingApi({ nodeId: 'a', secret: SECRET })
    registerClawmatrix(api, runtime)
    const warnings: string[] = []
    await calls.services[0].stop({ logger: { warn: (m: string) => warnings.push(m) } })
    expect(stopped).toBe(false)
    finish()
    await waitFor('the node to finish stopping', () => stopped)
    expect(warnings).toEqual([])
    expect(STOP_WAIT_MS).toBeLessThan(5_000)
  })
})

describe('port clash with the gateway', () => {
  const config = (input: Record<string, unknown>) => parseConfig({ nodeId: 'a', secret: SECRET, ...input })

  it('names both settings when proxyPort is the gateway\'s port', () => {
    expect(() => { checkPortClash(config({ proxyPort: 18789 }), { gateway: { port: 18789 } }, {}) })
      .toThrow('clawmatrix proxyPort 18789 is the port of this OpenClaw gateway (gateway.port / OPENCLAW_GATEWAY_PORT = 18789; `openclaw --dev` uses 19001, the default proxyPort); set a different port in plugins.entries.clawmatrix.config')
  })

  it('catches `openclaw --dev` (OPENCLAW_GATEWAY_PORT=19001) against the default proxyPort, and a listening listenPort', () => {
    expect(() => { checkPortClash(config({}), {}, { OPENCLAW_GATEWAY_PORT: '19001' }) }).toThrow(/proxyPort 19001 is the port of this OpenClaw gateway/)
    expect(() => { checkPortClash(config({ listen: true, listenPort: 18789 }), {}, {}) }).toThrow(/listenPort 18789 is the port/)
    expect(() => { checkPortClash(config({ listenPort: 18789 }), {}, {}) }).not.toThrow() // not listening: no clash
    expect(() => { checkPortClash(config({}), { gateway: { port: 18789 } }, {}) }).not.toThrow()
  })
})

describe('the tools against real nodes', () => {
  const nodes = testNodes()
  const runtime = new MeshRuntime()
  let stateDir = ''
  afterEach(async () => {
    await runtime.stop()
    await nodes.cleanup()
    await rm(stateDir, { recursive: true, force: true })
  })

  it('cluster_peers lists both nodes; unknown nodes and refused tools are input and authorization errors', async () => {
    const hub = await nodes.start({ nodeId: 'hub', listen: true, heartbeat: { intervalMs: 500 }, toolProxy: { enabled: true, deny: ['exec'] } })
    stateDir = await mkdtemp(join(tmpdir(), 'clawmatrix-plugin-'))
    // the node the plugin's service would start, with the plugin config it would get
    const leaf = await runtime.start({
      pluginConfig: { nodeId: 'leaf', secret: SECRET, proxyPort: 0, peers: [{ nodeId: 'hub', url: hub.wsAddress() }], models: [{ id: 'm1', provider: 'ollama' }], heartbeat: { intervalMs: 500 } },
      stateDir,
      log: { info: () => {}, warn: () => {} }
    })
    const [peers, , , exec] = clusterTools({ runtime, caller: { agentId: 'main' } })
    const result = await waitFor('leaf to see hub', async () => {
      const r = await peers!.execute('call-1', {})
      return (r.details as any).nodes.length === 2 ? r : undefined
    })
    expect((result.details as any).nodes.map((n: any) => n.nodeId)).toEqual(['leaf', 'hub'])
    expect(result.content[0]!.text).toContain('tools for other nodes: all, except exec')
    expect(providerEntry(leaf)).toEqual({
      baseUrl: `${leaf.http.url}/v1`,
      apiKey: 'clawmatrix-local',
      api: 'openai-completions',
      models: [{ id: 'm1', name: 'm1 (clawmatrix: leaf)', input: ['text'] }]
    })

    // the `clawmatrix` provider: its catalog is the cluster's models, from the node in this process or
    // (a CLI process, no node) from the node's GET /v1/models; any id resolves; the key is synthetic
    const openclawConfig = { plugins: { entries: { clawmatrix: { config: { nodeId: 'leaf', proxyPort: Number(new URL(leaf.http.url).port) } } } } }
    const baseUrl = `${leaf.http.url}/v1`
    for (const provider of [clawmatrixProvider(runtime), clawmatrixProvider(new MeshRuntime())] as any[]) {
      const catalog = await provider.catalog.run({ config: openclawConfig })
      expect(catalog.provider).toMatchObject({ baseUrl, api: 'openai-completions', models: [{ id: 'm1', name: 'm1 (clawmatrix: leaf)', input: ['text'] }] })
      expect(provider.resolveSyntheticAuth({ config: openclawConfig })).toMatchObject({ apiKey: 'clawmatrix-local', mode: 'api-key' })
      expect(provider.resolveDynamicModel({ config: openclawConfig, modelId: 'joined-later' })).toMatchObject({ id: 'joined-later', provider: 'clawmatrix', api: 'openai-completions', baseUrl })
      expect(await provider.catalog.run({ config: {} })).toBeNull()
    }
    // the same provider as OpenClaw loads it on its own (the manifest's providerCatalogEntry), with no node in the process
    const discovery = (await import('../src/openclaw/provider-discovery.js')).default as any
    expect((await discovery.catalog.run({ config: openclawConfig })).provider.models.map((m: any) => m.id)).toEqual(['m1'])
    expect(discovery.resolveSyntheticAuth({ config: openclawConfig })).toMatchObject({ apiKey: 'clawmatrix-local' })
    const withToken = { plugins: { entries: { clawmatrix: { config: { proxyPort: 1, proxyToken: 'tok-123' } } } } }
    expect((clawmatrixProvider(runtime) as any).resolveSyntheticAuth({ config: withToken }).apiKey).toBe('tok-123')
    expect((await (clawmatrixProvider(new MeshRuntime()) as any).catalog.run({ config: withToken })).provider).toMatchObject({ apiKey: 'clawmatrix-local', models: [] })

    // the key OpenClaw finds for an agent turn: the proxy's token, else the marker; a key set by the user stays
    const env: NodeJS.ProcessEnv = {}
    exposeProviderKey({ nodeId: 'leaf' }, env)
    expect(env[PROVIDER_KEY_ENV]).toBe('clawmatrix-local')
    exposeProviderKey({ nodeId: 'leaf', proxyToken: 'tok-123' }, env)
    expect(env[PROVIDER_KEY_ENV]).toBe('clawmatrix-local')
    const fresh: NodeJS.ProcessEnv = {}
    exposeProviderKey({ nodeId: 'leaf', proxyToken: 'tok-123' }, fresh)
    expect(fresh[PROVIDER_KEY_ENV]).toBe('tok-123')

    const unknown = await exec!.execute('call-2', { node: 'nowhere', command: 'true' }).catch((err: Error) => err)
    expect(unknown).toBeInstanceOf(ToolInputError)
    expect(unknown).toMatchObject({ status: 400, message: 'unknown node "nowhere": the cluster has nodes [leaf, hub]' })
    const denied = await exec!.execute('call-3', { node: 'hub', command: 'true' }).catch((err: Error) => err)
    expect(denied).toBeInstanceOf(ToolAuthorizationError)
    expect(denied).toMatchObject({ status: 403, message: 'tool "exec" denied by policy on hub (toolProxy.deny)' })
  })
})

describe('a settled task announced into its session', () => {
  it('goes in internally when the session has no delivery channel, and remembers that for the session', async () => {
    const calls: Array<{ sessionKey: string, deliver?: boolean }> = []
    const announce = announceTask({
      run: async params => {
        calls.push({ sessionKey: params.sessionKey, deliver: params.deliver })
        // as OpenClaw answers deliver:true for a webchat or /tools/invoke session
        if (params.deliver === true && params.sessionKey === 'agent:main:main') throw new Error('delivery channel is required: pass --channel/--reply-channel or use a main session with a previous channel')
        return { runId: `run-${calls.length}` }
      }
    })
    const task = (id: string, session: string): any => ({ id, state: 'completed', agent: 'main', node: 'worker', contextId: id, turns: [], result: 'done', owner: { nodeId: 'home', peerId: 'p', session } })
    await announce(task('t1', 'agent:main:main'))
    await announce(task('t2', 'agent:main:main'))
    await announce(task('t3', 'agent:main:telegram:direct:42'))
    expect(calls).toEqual([
      { sessionKey: 'agent:main:main', deliver: true },
      { sessionKey: 'agent:main:main', deliver: false },
      { sessionKey: 'agent:main:main', deliver: false },
      { sessionKey: 'agent:main:telegram:direct:42', deliver: true }
    ])
  })
})

describe('tasks from an OpenClaw session, between two nodes', () => {
  /**
   * OpenClaw's subagent runtime as far as a task uses it: runs are admitted at
   * once and end when the test releases them with a reply (waitForRun answers
   * "timeout" after its slice until then, as OpenClaw's agent.wait does).
   */
  function openclawRuns () {
    const runs: Array<{ params: any, runId: string, done: PromiseWithResolvers<void> }> = []
    const replies = new Map<string, string>()
    const subagent: SubagentRuntime = {
      run: async params => {
        const run = { params, runId: `run-${runs.length + 1}`, done: Promise.withResolvers<void>() }
        runs.push(run)
        return { runId: run.runId, sessionKey: params.sessionKey }
      },
      waitForRun: async ({ runId, timeoutMs }) => {
        const run = runs.find(r => r.runId === runId)!
        let timer: ReturnType<typeof setTimeout> | undefined
        const slice = new Promise<'timeout'>(resolve => { timer = setTimeout(() => { resolve('timeout') }, timeoutMs) })
        const status = await Promise.race([run.done.promise.then(() => 'ok' as const), slice])
        clearTimeout(timer)
        return { status }
      },
      getSessionMessages: async ({ sessionKey }) => ({ messages: [{ role: 'assistant', content: replies.get(sessionKey) ?? '' }] }),
      deleteSession: async () => {}
    }
    const finish = (run: { params: any, done: PromiseWithResolvers<void> }, reply: string): void => {
      replies.set(run.params.sessionKey, reply)
      run.done.resolve()
    }
    return { runs, subagent, finish }
  }

  const office = new MeshRuntime()
  const leaf = new MeshRuntime()
  const dirs: string[] = []
  afterEach(async () => {
    await leaf.stop()
    await office.stop()
    await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
  })

  it('wait:false returns the id; cluster_task reads it working, cancels it saying the run goes on, and a message continues the conversation; each end is announced into the session', async () => {
    const host = openclawRuns()
    const announced = openclawRuns()
    const log = { info: () => {}, warn: () => {} }
    for (const _ of [0, 1]) dirs.push(await mkdtemp(join(tmpdir(), 'clawmatrix-plugin-')))
    const hub = await office.start({
      pluginConfig: { nodeId: 'office', secret: SECRET, listen: true, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, agents: [{ id: 'main', description: 'x' }], heartbeat: { intervalMs: 500 } },
      stateDir: dirs[0]!,
      log,
      work: () => ({ agentRunner: new OpenClawAgentRunner(host.subagent, new Set(['main'])) })
    })
    const url = hub.swarm.getMultiaddrs().map(String).find(a => a.includes('/ws/'))!
    await leaf.start({
      pluginConfig: { nodeId: 'leaf', secret: SECRET, listenHost: '127.0.0.1', proxyPort: 0, peers: [{ nodeId: 'office', url }], heartbeat: { intervalMs: 500 } },
      stateDir: dirs[1]!,
      log,
      tasks: () => ({ deliver: announceTask(announced.subagent) })
    })
    const tools = clusterTools({ runtime: leaf, caller: { agentId: 'main', sessionKey: 'agent:main:main' } })
    const tool = (name: string) => tools.find(t => t.name === name)!
    await waitFor('leaf to see office\'s agent', () => leaf.current!.view.nodes().some(n => n.agents.some(a => a.id === 'main')))

    const started = await tool('cluster_handoff').execute('c1', { target: 'main', task: 'nu xi', wait: false })
    const { taskId, contextId } = started.details as any
    expect(started.content[0]!.text).toBe(`task ${taskId} handed to main on office (contextId ${contextId}); its answer will be delivered into this session when it ends; cluster_task shows it any time`)
    await waitFor('the OpenClaw run on office', () => host.runs.length === 1)
    expect(host.runs[0]!.params).toMatchObject({ sessionKey: `agent:main:clawmatrix-${contextId}`, deliver: false })
    expect(host.runs[0]!.params.message).toBe('[task handed off through clawmatrix from leaf/agent:main:main]\nnu xi')

    const working = await waitFor('the task to be working with progress', async () => {
      const r = await tool('cluster_task').execute('c2', { action: 'status', id: taskId })
      return (r.details as any).progress?.length > 0 ? r : undefined
    })
    expect(working.content[0]!.text).toBe(`task ${taskId} is working on main@office; latest progress: agent main started (run run-1)`)

    const canceled = await tool('cluster_task').execute('c3', { action: 'cancel', id: taskId })
    expect(canceled.details).toEqual({ taskId, state: 'canceled', stopped: false })
    expect(canceled.content[0]!.text).toBe(`task ${taskId} canceled: office cannot stop a running main turn (the host offers no abort), so that run continues there and its answer will be discarded`)
    // the run goes on in OpenClaw; when it ends, its answer is discarded
    host.finish(host.runs[0]!, 'the discarded answer')
    await waitFor('the cancel to be announced', () => announced.runs.length === 1)
    expect(announced.runs[0]!.params).toMatchObject({ sessionKey: 'agent:main:main', deliver: true })
    expect(announced.runs[0]!.params.message).toMatch(new RegExp(`^\\[clawmatrix task ${taskId} canceled: agent main on office; contextId ${contextId}\\]\nThe task was canceled: office cannot stop`))

    const followUp = await tool('cluster_task').execute('c4', { action: 'message', id: taskId, message: 'omicron pi' })
    const next = followUp.details as any
    expect(next.contextId).toBe(contextId)
    expect(next.taskId).not.toBe(taskId)
    expect(followUp.content[0]!.text).toMatch(new RegExp(`^task ${taskId} had ended: your message is task ${next.taskId} in the same conversation; main on office is (submitted|working)\\. The answer will be delivered into this session\\.$`))
    // the same OpenClaw session on office: the conversation's
    await waitFor('the follow-up\'s run on office', () => host.runs.length === 2)
    expect(host.runs[1]!.params.sessionKey).toBe(`agent:main:clawmatrix-${contextId}`)
    host.finish(host.runs[1]!, 'second turn after the cancel')
    await waitFor('the follow-up\'s answer to be announced', () => announced.runs.length === 2)
    expect(announced.runs[1]!.params.message).toBe(`[clawmatrix task ${next.taskId} completed: agent main on office; contextId ${contextId}]\nsecond turn after the cancel`)

    const list = await tool('cluster_task').execute('c5', { action: 'list' })
    expect(list.content[0]!.text).toBe(`${next.taskId} completed main@office: omicron pi\n${taskId} canceled main@office: nu xi`)
  })
})

describe('offered agents against the gateway\'s own', () => {
  it('reads OpenClaw\'s roster (entries, or the legacy list; main without one) and skips a2a and command agents', () => {
    expect(openclawAgentIds(undefined)).toEqual(['main'])
    expect(openclawAgentIds({ agents: { entries: { home: {}, coder: {} } } })).toEqual(['coder', 'home'])
    expect(openclawAgentIds({ agents: { list: [{ id: 'main' }, { id: 'ops' }] } })).toEqual(['main', 'ops'])
    const offered = [
      { id: 'coder', description: '', tags: [] },
      { id: 'remote', description: '', tags: [], a2a: { url: 'http://x' } },
      { id: 'script', description: '', tags: [], command: ['true'] }
    ] as any[]
    expect(unknownAgentWarnings(offered, { agents: { entries: { coder: {} } } })).toEqual([])
    expect(unknownAgentWarnings(offered, { agents: { entries: { home: {}, work: {} } } })).toEqual([expect.stringMatching(/^clawmatrix agents: "coder" is not an agent of this OpenClaw gateway, which has "home", "work"/)])
  })
})

describe('hand-offs as OpenClaw agent runs', () => {
  it('the prompt carries task and context; the reply is the last assistant text', () => {
    expect(handoffMessage('fix the build', { repo: 'x' })).toBe('[task handed off through clawmatrix]\nfix the build\n\nContext:\n{\n  "repo": "x"\n}')
    expect(handoffMessage('fix the build', undefined)).toBe('[task handed off through clawmatrix]\nfix the build')
    // the calling node by name (the peer id only when the view does not know it), then its agent
    expect(handoffMessage('x', undefined, { peerId: '12D3KooWpeer', nodeId: 'home', label: 'main' })).toBe('[task handed off through clawmatrix from home/main]\nx')
    expect(handoffMessage('x', undefined, { peerId: '12D3KooWpeer' })).toBe('[task handed off through clawmatrix from 12D3KooWpeer]\nx')
    expect(lastAssistantText([
      { role: 'user', content: 'q' },
      { role: 'assistant', content: [{ type: 'text', text: 'first' }] },
      { role: 'assistant', content: [{ type: 'toolCall', name: 'x' }, { type: 'text', text: 'fin' }, { type: 'text', text: 'al' }] },
      { role: 'toolResult', content: 'ignored' }
    ])).toBe('final')
    expect(lastAssistantText([{ role: 'user', content: 'q' }])).toBeUndefined()
  })
})

describe('runs for the mesh in the service\'s context', () => {
  // OpenClaw keeps the request a plugin serves in async context; the mesh's later work must not run in a finished one
  it('every subagent call runs in the context the service started in, not the caller\'s', async () => {
    const request = new AsyncLocalStorage<string>()
    const seen: Array<string | undefined> = []
    const host: SubagentRuntime = {
      run: async () => { seen.push(request.getStore()); return { runId: 'r1' } },
      waitForRun: async () => { seen.push(request.getStore()); return { status: 'ok' } },
      getSessionMessages: async () => { seen.push(request.getStore()); return { messages: [] } },
      deleteSession: async () => { seen.push(request.getStore()) }
    }
    const subagent = request.run('service start', () => subagentIn(host, AsyncLocalStorage.snapshot()))
    await request.run('tool call over HTTP', async () => {
      expect(await subagent.run({ sessionKey: 'agent:main:main', message: 'x' })).toEqual({ runId: 'r1' })
      await subagent.waitForRun({ runId: 'r1' })
      await subagent.getSessionMessages({ sessionKey: 'agent:main:main' })
      await subagent.deleteSession({ sessionKey: 'agent:main:main' })
    })
    expect(seen).toEqual(['service start', 'service start', 'service start', 'service start'])
  })
})

describe('messages into an OpenClaw session', () => {
  /** OpenClaw's subagent runtime, reduced to a run() the test settles by hand. */
  function subagent () {
    const runs: Array<{ params: any, settle: (ok: boolean) => void }> = []
    const runtime: Pick<SubagentRuntime, 'run'> = {
      run: async params => new Promise((resolve, reject) => {
        runs.push({ params, settle: ok => { ok ? resolve({ runId: 'r1' }) : reject(new Error('agent "x" is not configured')) } })
      })
    }
    return { runs, runtime: runtime as SubagentRuntime }
  }
  const from = { peerId: '12D3KooWpeer', nodeId: 'home', label: 'main' }

  it('go into the agent\'s main session, acknowledged once OpenClaw admits the run; an admission failure is the sender\'s', async () => {
    const { runs, runtime } = subagent()
    const sink = new OpenClawMessageSink(runtime, new Set(['main']), () => {}, 60_000)
    expect(sink.has('main')).toBe(true)
    expect(sink.has('other')).toBe(false)
    const delivered = sink.deliver('main', 'hello', from, { id: 'm1', signal: AbortSignal.timeout(60_000) })
    await waitFor('the run', () => runs.length === 1)
    expect(runs[0]!.params).toEqual({ sessionKey: 'agent:main:main', message: '[clawmatrix message from home/main]\nhello', deliver: false, idempotencyKey: 'm1' })
    runs[0]!.settle(true)
    await delivered
    const refused = sink.deliver('main', 'hello', from, { id: 'm2', signal: AbortSignal.timeout(60_000) })
    await waitFor('the second run', () => runs.length === 2)
    runs[1]!.settle(false)
    await expect(refused).rejects.toThrow('agent "x" is not configured')
  })

  it('still queued in OpenClaw after the hand-over wait: acknowledged, and a later failure is logged', async () => {
    const { runs, runtime } = subagent()
    const late: string[] = []
    const sink = new OpenClawMessageSink(runtime, new Set(['main']), message => late.push(message), 50)
    await sink.deliver('main', 'hello', from, { id: 'm3', signal: AbortSignal.timeout(60_000) })
    runs[0]!.settle(false)
    await waitFor('the late failure', () => late.length === 1)
    expect(late[0]).toBe('message m3 for agent main was acknowledged as queued, then failed: agent "x" is not configured')
  })
})

describe('models a gateway hosts', () => {
  const model = (input: Record<string, unknown>) => parseConfig({ nodeId: 'a', secret: SECRET, models: [input] }).models[0]!

  it('without a baseUrl, are served by the OpenClaw provider they name, with its key and API', async () => {
    const resolve = openclawModelTargets({
      models: {
        providers: {
          local: { baseUrl: 'http://127.0.0.1:11434/v1', apiKey: 'k-local', api: 'openai-completions' },
          claude: { baseUrl: 'https://api.anthropic.com', apiKey: 'k-claude', api: 'anthropic-messages' }
        }
      }
    })
    expect(await resolve(model({ id: 'qwen', provider: 'local', upstreamModel: 'qwen2.5:7b' })))
      .toEqual({ baseUrl: 'http://127.0.0.1:11434/v1', dialect: 'openai', apiKey: 'k-local', upstreamModel: 'qwen2.5:7b' })
    expect(await resolve(model({ id: 'sonnet', provider: 'claude' })))
      .toEqual({ baseUrl: 'https://api.anthropic.com', dialect: 'anthropic', apiKey: 'k-claude', upstreamModel: 'sonnet' })
    // a model's own baseUrl wins; a provider OpenClaw does not know falls back to the known defaults
    expect(await resolve(model({ id: 'x', provider: 'local', baseUrl: 'http://10.0.0.5:8000/v1' }))).toMatchObject({ baseUrl: 'http://10.0.0.5:8000/v1' })
    expect(() => resolve(model({ id: 'y', provider: 'nowhere' }))).toThrow(/baseUrl is not set and provider "nowhere" has no default/)
  })
})
