import { logger } from '@libp2p/logger'
import type { ComponentLogger, Logger } from '@libp2p/interface'

/**
 * Where a node's operator-facing lines go: stderr for the CLI, OpenClaw's
 * logger in the plugin. Debug lines go through libp2p's logger instead.
 */
export interface InfoLog {
  info(message: string): void
  warn(message: string): void
}

/** The fallback when an embedder gives no log: stderr, warnings marked. */
export const consoleLog: InfoLog = {
  info: message => { console.error(message) },
  warn: message => { console.error(`warning: ${message}`) }
}

/**
 * The debug logger of one node, handed to libp2p and to every part as
 * `components.logger`: it puts the node id after the first namespace segment,
 * so `clawmatrix:heartbeat` logs as `clawmatrix:hub:heartbeat` and libp2p's
 * `libp2p:dialer` as `libp2p:hub:dialer`. `DEBUG='clawmatrix:*'` still selects
 * every node; `DEBUG='clawmatrix:hub:*'` one of several in a process.
 */
export function nodeLogger (nodeId: string): ComponentLogger {
  return {
    forComponent (name: string): Logger {
      const colon = name.indexOf(':')
      return logger(colon < 0 ? `${name}:${nodeId}` : `${name.slice(0, colon)}:${nodeId}${name.slice(colon)}`)
    }
  }
}
