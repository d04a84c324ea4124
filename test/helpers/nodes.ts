import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../../src/config/load.js'
import { ClawmatrixNode, type ClawmatrixNodeInit } from '../../src/services/clawmatrix-node.js'
import { attachA2A } from '../../src/a2a/index.js'
import { attachTasks, type TaskService } from '../../src/tasks/service.js'
import type { InfoLog } from '../../src/node/logging.js'

export const SECRET = 'test-secret-0123456789abcdef-unit'

/** Collects a node's info lines so tests can wait for them. */
export class LogLines implements InfoLog {
  readonly lines: string[] = []
  info (message: string): void { this.lines.push(message) }
  warn (message: string): void { this.lines.push(`warning: ${message}`) }
  has (pattern: RegExp): boolean { return this.lines.some(line => pattern.test(line)) }
}

export interface TestNode {
  node: ClawmatrixNode
  /** The node's task layer. */
  tasks: TaskService
  log: LogLines
  stateDir: string
  /** The node's ws multiaddr (listening nodes only). */
  wsAddress: () => string
}

/**
 * A real node on loopback with ephemeral ports and its own temp state dir.
 * `cleanup` stops every node made through it and removes their state.
 */
export function testNodes (): { start: (input: Record<string, unknown>, stateDir?: string, init?: Pick<ClawmatrixNodeInit, 'modelProxy'>) => Promise<TestNode>, cleanup: () => Promise<void> } {
  const started: TestNode[] = []
  const dirs: string[] = []
  return {
    async start (input, stateDir, init) {
      const dir = stateDir ?? await mkdtemp(join(tmpdir(), 'clawmatrix-test-'))
      if (stateDir == null) dirs.push(dir)
      const config = parseConfig({ secret: SECRET, listenHost: '127.0.0.1', listenPort: 0, proxyPort: 0, ...input })
      const log = new LogLines()
      const node = await ClawmatrixNode.create({ ...init, config, stateDir: dir, log })
      const tasks = attachTasks(node, dir)
      attachA2A(node, tasks)
      await node.start()
      const handle: TestNode = {
        node,
        tasks,
        log,
        stateDir: dir,
        wsAddress: () => {
          const address = node.swarm.getMultiaddrs().map(String).find(a => a.includes('/ws/') && !a.includes('p2p-circuit'))
          if (address == null) throw new Error(`${config.nodeId} has no ws address`)
          return address
        }
      }
      started.push(handle)
      return handle
    },
    async cleanup () {
      await Promise.allSettled(started.map(async t => { await t.node.stop() }))
      await Promise.allSettled(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
    }
  }
}
