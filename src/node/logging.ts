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
