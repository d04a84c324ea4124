import { homedir } from 'node:os'
import { join } from 'node:path'
import { ClawmatrixNode } from '../services/clawmatrix-node.js'
import { attachA2A } from '../a2a/index.js'
import { attachTasks } from '../tasks/service.js'
import type { InfoLog } from '../node/logging.js'
import type { Config } from '../config/schema.js'

export const SECRET_ENV = 'CLAWMATRIX_SECRET'

/** Default state directory: $CLAWMATRIX_STATE_DIR, else ~/.clawmatrix/<nodeId>. */
export function defaultStateDir (nodeId: string): string {
  return process.env.CLAWMATRIX_STATE_DIR ?? join(homedir(), '.clawmatrix', nodeId)
}

export const stderrLog: InfoLog = {
  info: message => { process.stderr.write(`${new Date().toISOString()} ${message}\n`) },
  warn: message => { process.stderr.write(`${new Date().toISOString()} warning: ${message}\n`) }
}

/**
 * Starts a node and keeps it running until SIGINT or SIGTERM, then stops it
 * gracefully (peers see a close, not a timeout). A second signal exits at once.
 */
export async function runUntilSignal (config: Config, stateDir: string): Promise<void> {
  const node = await ClawmatrixNode.create({ config, stateDir, log: stderrLog })
  attachA2A(node, attachTasks(node, stateDir))
  await node.start()
  await untilSignal()
  stderrLog.info(`stopping ${config.nodeId}`)
  // refuses new work and announces the leave before the slower part of stopping
  await node.beginShutdown()
  await node.stop()
}

export async function untilSignal (): Promise<NodeJS.Signals> {
  return new Promise(resolve => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      process.once('SIGINT', () => process.exit(130))
      process.once('SIGTERM', () => process.exit(143))
      resolve(signal)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
