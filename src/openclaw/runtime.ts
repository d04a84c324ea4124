import { join } from 'node:path'
import { MeshNotRunningError } from './errors.js'
import { checkPortClash } from './ports.js'
import type { InfoLog } from '../node/logging.js'
import type { ClawmatrixNode, ClawmatrixNodeInit } from '../services/clawmatrix-node.js'
import type { TaskService, TaskServiceInit } from '../tasks/service.js'
import type { ClusterClient } from './cluster-client.js'
import type { Config } from '../config/schema.js'

/**
 * The node's code (libp2p and everything on it), imported when the service
 * first starts a node: OpenClaw loads the plugin in every CLI process too,
 * where `register` only declares and no node runs.
 */
async function nodeModules () {
  const [{ parseConfig }, { loadJoinedState, withJoinedState }, { ClawmatrixNode }, { attachA2A }, { attachTasks }] = await Promise.all([
    import('../config/load.js'),
    import('../membership/index.js'),
    import('../services/clawmatrix-node.js'),
    import('../a2a/index.js'),
    import('../tasks/service.js')
  ])
  return { parseConfig, loadJoinedState, withJoinedState, ClawmatrixNode, attachA2A, attachTasks }
}

export interface MeshStartInit {
  /** `plugins.entries.clawmatrix.config`, validated here with the one schema. */
  pluginConfig: unknown
  /** OpenClaw's whole config, for the gateway's own port. */
  openclawConfig?: { gateway?: { port?: unknown } }
  /** The service's state dir; the node keeps its peer key and sequence under `<stateDir>/clawmatrix`. */
  stateDir: string
  log: InfoLog
  env?: NodeJS.ProcessEnv
  /**
   * How work from other nodes runs here, built from the validated config
   * (the plugin runs hand-offs as OpenClaw agent runs).
   */
  work?: (config: Config) => ClawmatrixNodeInit['work']
  /** The task layer's seams (delivery of settled tasks into the calling session), likewise. */
  tasks?: (config: Config) => TaskServiceInit
  /** Model proxy seams, likewise. */
  modelProxy?: (config: Config) => ClawmatrixNodeInit['modelProxy']
}

/**
 * The one mesh node of this gateway process. OpenClaw calls the plugin's
 * `register` several times (metadata, discovery, full load) and may load the
 * module more than once, so the node lives on a `globalThis` singleton that
 * every registration's tools and methods reach; the service starts and stops
 * it. Starts and stops are serialized: a reload's stop finishes before the
 * next start binds the same ports.
 */
export class MeshRuntime {
  private node?: ClawmatrixNode
  private tasks?: TaskService
  private transition: Promise<unknown> = Promise.resolve()
  private failure?: Error
  /** Replaces the running node's caller API for the tools (tests, embedders); `node.client` otherwise. */
  clusterClient?: ClusterClient

  /** The running node, if any. */
  get current (): ClawmatrixNode | undefined {
    return this.node
  }

  /** The running node, or an error saying why there is none. */
  requireNode (): ClawmatrixNode {
    if (this.node != null) return this.node
    if (this.failure != null) throw new MeshNotRunningError(`the clawmatrix node is not running on this gateway: it failed to start: ${this.failure.message}`)
    throw new MeshNotRunningError('the clawmatrix node is not running on this gateway (the service has not started, or is stopping)')
  }

  /** The running node's task layer, or an error saying why there is none. */
  requireTasks (): TaskService {
    const node = this.requireNode()
    if (this.tasks == null) throw new MeshNotRunningError(`the task layer of ${node.config.nodeId} is not running`)
    return this.tasks
  }

  async start (init: MeshStartInit): Promise<ClawmatrixNode> {
    return this.serialize(async () => {
      if (this.node != null) return this.node
      this.failure = undefined
      let node: ClawmatrixNode | undefined
      try {
        const { parseConfig, loadJoinedState, withJoinedState, ClawmatrixNode, attachA2A, attachTasks } = await nodeModules()
        const stateDir = join(init.stateDir, 'clawmatrix')
        // A gateway that ran `openclaw clawmatrix join` takes its name, secret and authority from there.
        const raw = init.pluginConfig
        const pluginConfig = raw != null && typeof raw === 'object' && !Array.isArray(raw)
          ? withJoinedState(raw as Record<string, unknown>, await loadJoinedState(stateDir))
          : raw
        const config = parseConfig(pluginConfig, 'plugins.entries.clawmatrix.config')
        checkPortClash(config, init.openclawConfig, init.env ?? process.env)
        node = await ClawmatrixNode.create({
          config,
          stateDir,
          log: init.log,
          work: init.work?.(config),
          modelProxy: init.modelProxy?.(config)
        })
        const tasks = attachTasks(node, stateDir, init.tasks?.(config))
        // every agent of the cluster as an A2A agent on this node's endpoint (docs/a2a.md), as `clawmatrix run` has it
        attachA2A(node, tasks)
        await node.start()
        this.node = node
        this.tasks = tasks
        return node
      } catch (err: any) {
        // A failed start has already stopped the parts it started; this stops whatever a later change may leave.
        await node?.stop().catch(() => {})
        this.failure = err
        throw err
      }
    })
  }

  /**
   * The gateway started to stop (its drain can last minutes before the
   * service's stop): the node announces its leave, refuses new work with
   * `<nodeId> is shutting down` and cancels what runs for other nodes.
   * Not serialized: it must not wait behind a start or stop.
   */
  async beginShutdown (): Promise<void> {
    await this.node?.beginShutdown()
  }

  async stop (): Promise<void> {
    await this.serialize(async () => {
      const node = this.node
      this.node = undefined
      this.tasks = undefined
      await node?.stop()
    })
  }

  private async serialize<T> (step: () => Promise<T>): Promise<T> {
    const next = this.transition.then(step, step)
    this.transition = next.catch(() => {})
    return next
  }
}

const RUNTIME_KEY = Symbol.for('clawmatrix.openclaw.runtime')

/** The process-wide runtime, created on first use. */
export function meshRuntime (): MeshRuntime {
  const holder = globalThis as { [RUNTIME_KEY]?: MeshRuntime }
  holder[RUNTIME_KEY] ??= new MeshRuntime()
  return holder[RUNTIME_KEY]
}
