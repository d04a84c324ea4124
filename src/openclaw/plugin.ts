import { AsyncLocalStorage } from 'node:async_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { gatewayMethods } from './gateway-methods.js'
import { CLI_COMMAND, TOOL_NAMES } from './manifest.js'
import { gatewayPortOf } from './ports.js'
import { clawmatrixProvider } from './provider.js'
import { exposeProviderKey } from './provider-key.js'
import { meshRuntime, type MeshRuntime } from './runtime.js'
import { clusterTools } from './tools/index.js'
import type { OpenClawAgentsConfig } from './agents.js'
import type { CommandLike } from './cli.js'
import type { AgentEvents, SubagentRuntime } from './host.js'
import type { OpenClawPluginApi } from 'openclaw/plugin-sdk/plugin-entry'

export const SERVICE_ID = 'clawmatrix-mesh'

/** How long the service's stop waits for the node before it returns (the node goes on stopping). */
export const STOP_WAIT_MS = 1_000

/**
 * Registers everything the plugin offers. OpenClaw calls this several times
 * per process (CLI metadata, discovery, the full load), so it only declares:
 * no socket, file, timer or environment change here (OpenClaw's CLI refuses
 * to go on when a plugin's registration changed the environment). The mesh
 * node starts in the service, which imports the node's code then: every
 * `openclaw ...` command loads this module, few run a node.
 */
export function registerClawmatrix (api: OpenClawPluginApi, runtime: MeshRuntime = meshRuntime()): void {
  api.registerService({
    id: SERVICE_ID,
    async start (ctx) {
      const [{ unknownAgentWarnings }, { gatewayTools }, { OpenClawAgentRunner, OpenClawMessageSink, subagentIn }, { announceTask }, { openclawModelTargets }, { builtinToolRegistry }] = await Promise.all([
        import('./agents.js'),
        import('./gateway-tools.js'),
        import('./host.js'),
        import('./task-delivery.js'),
        import('./models.js'),
        import('../services/tools/builtin.js')
      ])
      // the key an agent turn on `clawmatrix/<model>` sends to this node's proxy (in the gateway's process only)
      exposeProviderKey(api.pluginConfig)
      const host = api.runtime?.subagent as SubagentRuntime | undefined
      // runs for the mesh are the service's, never a finished tool call's (see subagentIn)
      const subagent = host == null ? undefined : subagentIn(host, AsyncLocalStorage.snapshot())
      await runtime.start({
        pluginConfig: api.pluginConfig ?? {},
        openclawConfig: ctx.config,
        stateDir: ctx.stateDir,
        log: ctx.logger,
        // hand-offs and messages from other nodes run as this gateway's own agents
        work: config => {
          const tools = builtinToolRegistry()
          // The gateway's other tools, for the tool proxy: exec/read/write/edit stay clawmatrix's own.
          const gateway = ctx.config as { gateway?: { port?: unknown, auth?: { token?: unknown } } } | undefined
          const port = gatewayPortOf(gateway, process.env)
          const token = gateway?.gateway?.auth?.token
          if (port != null) tools.setFallback(gatewayTools({ port, token: typeof token === 'string' ? token : undefined }))
          for (const warning of unknownAgentWarnings(config.agents, ctx.config as OpenClawAgentsConfig)) ctx.logger.warn(warning)
          if (subagent == null) return { tools }
          const agents = new Set(config.agents.map(agent => agent.id))
          return {
            agentRunner: new OpenClawAgentRunner(subagent, agents, api.runtime?.events as AgentEvents | undefined),
            messageSink: new OpenClawMessageSink(subagent, agents, message => { ctx.logger.warn(message) }),
            tools
          }
        },
        // a task started here with wait:false comes back into the session that started it
        tasks: () => ({ deliver: subagent == null ? undefined : announceTask(subagent) }),
        modelProxy: () => ({ resolveTarget: openclawModelTargets(ctx.config as Parameters<typeof openclawModelTargets>[0]) })
      })
    },
    // OpenClaw gives a plugin's cleanup 5 s, on a config reload as on shutdown, and past that retires the plugin
    // ("forced retirement") without applying the reload; closing every connection gracefully can take longer on a
    // loaded machine. So the stop returns after STOP_WAIT_MS at most while the node goes on stopping: the next start
    // waits for it (MeshRuntime serializes them), and on shutdown the leave was announced when the drain began.
    async stop (ctx) {
      const stopping = runtime.stop()
      stopping.catch((err: any) => { ctx?.logger?.warn(`stopping the clawmatrix node failed: ${err?.message ?? String(err)}`) })
      const waited = new AbortController()
      await Promise.race([stopping.catch(() => {}), delay(STOP_WAIT_MS, undefined, { signal: waited.signal }).catch(() => {})])
      waited.abort()
    }
  })

  // The gateway aborts this signal when its drain begins (a restart or shutdown, not a plugin
  // reload); the service's stop comes only after the drain, which can take minutes.
  api.on('gateway_start', (_event, ctx) => {
    const signal = ctx.abortSignal
    if (signal == null) return
    const begin = (): void => { void runtime.beginShutdown().catch(() => {}) }
    if (signal.aborted) begin()
    else signal.addEventListener('abort', begin, { once: true })
  })

  // `clawmatrix/<model>` for this gateway's agents: the cluster's models, live, with no key to set
  api.registerProvider(clawmatrixProvider(runtime) as any)

  // A factory, so each run's tools know which agent and session call them.
  api.registerTool(ctx => clusterTools({ runtime, caller: { agentId: ctx.agentId, sessionKey: ctx.sessionKey } }) as any[], { names: [...TOOL_NAMES] })

  for (const method of gatewayMethods(runtime)) {
    api.registerGatewayMethod(method.name, method.handler as any, { scope: 'operator.read' })
  }

  api.registerCli(async ({ program }) => {
    const { registerClawmatrixCli } = await import('./cli.js')
    await registerClawmatrixCli(program as unknown as CommandLike)
  }, { descriptors: [CLI_COMMAND] })
}
