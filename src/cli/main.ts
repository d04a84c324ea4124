#!/usr/bin/env node
import { readFile } from 'node:fs/promises'
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util'
import { ConfigError, parseConfig } from '../config/load.js'
import { DEFAULT_LISTEN_PORT, DEFAULT_PROXY_PORT } from '../config/schema.js'
import { VERSION } from '../version.js'
import { runDemo } from './demo.js'
import { defaultStateDir, runUntilSignal, SECRET_ENV } from './run-node.js'
import { formatStatus } from './status-format.js'
import { inspectCommand } from './inspect.js'
import { peersCommand } from './peers.js'
import type { NodeStatus } from '../services/status.js'

const USAGE = `clawmatrix ${VERSION}: a libp2p mesh of OpenClaw gateways

usage:
  clawmatrix demo                                    a local 3-node mesh, no config needed
  clawmatrix node --config <file.json> [--state-dir <dir>]
  clawmatrix relay [--listen-host H] [--listen-port P] [--proxy-port P] [--node-id ID] [--state-dir D]
  clawmatrix status [--host H] [--port N] [--json]
  clawmatrix peers [--host H] [--port N] [--json]     live libp2p connections and their streams
  clawmatrix inspect <url|multiaddr> [--json]         identify, ping and the cluster view of a member

The secret comes from the config file or the ${SECRET_ENV} environment variable, never from argv.
Debug logs: DEBUG='clawmatrix:*' (add ',libp2p:*' for the swarm underneath).`

/** A failure the user can fix: printed without a stack trace. */
class UsageError extends Error {}

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  if (rest.some(arg => arg === '--secret' || arg.startsWith('--secret='))) {
    throw new UsageError(`the secret is never taken from the command line (it would show in ps and shell history); set ${SECRET_ENV} or put it in the config file`)
  }
  switch (command) {
    case 'demo': return runDemo()
    case 'node': return nodeCommand(rest)
    case 'relay': return relayCommand(rest)
    case 'status': return statusCommand(rest)
    case 'peers': return peersCommand(rest)
    case 'inspect': return inspectCommand(rest)
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(USAGE + '\n')
      return
    case '--version': case '-v':
      process.stdout.write(VERSION + '\n')
      return
    default:
      throw new UsageError(`unknown command "${command}"\n\n${USAGE}`)
  }
}

async function nodeCommand (args: string[]): Promise<void> {
  const { values } = parse(args, { config: { type: 'string' }, 'state-dir': { type: 'string' } })
  if (values.config == null) throw new UsageError('clawmatrix node needs --config <file.json>')
  let json: Record<string, unknown>
  try {
    json = JSON.parse(await readFile(values.config, 'utf8'))
  } catch (err: any) {
    throw new ConfigError([err.code === 'ENOENT' ? `file not found: ${values.config}` : `not valid JSON: ${err.message}`], values.config)
  }
  const secret = process.env[SECRET_ENV]
  const config = parseConfig(json?.secret == null && secret != null ? { ...json, secret } : json, values.config)
  await runUntilSignal(config, values['state-dir'] ?? defaultStateDir(config.nodeId))
}

async function relayCommand (args: string[]): Promise<void> {
  const { values } = parse(args, {
    'listen-host': { type: 'string' },
    'listen-port': { type: 'string' },
    'proxy-port': { type: 'string' },
    'node-id': { type: 'string' },
    'state-dir': { type: 'string' }
  })
  const secret = process.env[SECRET_ENV]
  if (secret == null || secret === '') throw new UsageError(`clawmatrix relay needs the cluster secret in ${SECRET_ENV}`)
  const config = parseConfig({
    nodeId: values['node-id'] ?? 'relay',
    secret,
    listen: true,
    listenHost: values['listen-host'] ?? '0.0.0.0',
    listenPort: portArg(values['listen-port'], '--listen-port', DEFAULT_LISTEN_PORT),
    proxyPort: portArg(values['proxy-port'], '--proxy-port', DEFAULT_PROXY_PORT)
  }, 'relay options')
  await runUntilSignal(config, values['state-dir'] ?? defaultStateDir(config.nodeId))
}

async function statusCommand (args: string[]): Promise<void> {
  const { values } = parse(args, { host: { type: 'string' }, port: { type: 'string' }, json: { type: 'boolean' } })
  const url = `http://${values.host ?? '127.0.0.1'}:${portArg(values.port, '--port', DEFAULT_PROXY_PORT)}/clawmatrix/status`
  let status: NodeStatus
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    status = await res.json() as NodeStatus
  } catch (err: any) {
    throw new UsageError(`no clawmatrix node answered at ${url} (${err.cause?.code ?? err.message}); is it running, and is --port its proxyPort?`)
  }
  process.stdout.write((values.json === true ? JSON.stringify(status, null, 2) : formatStatus(status)) + '\n')
}

function parse<O extends ParseArgsOptionsConfig> (args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true })
  } catch (err: any) {
    throw new UsageError(`${err.message}\n\n${USAGE}`)
  }
}

function portArg (value: string | undefined, flag: string, fallback: number): number {
  if (value == null) return fallback
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`${flag}: got "${value}"; expected a port number from 0 to 65535`)
  }
  return port
}

main(process.argv.slice(2)).then(() => {
  process.exit(0)
}, (err: any) => {
  const known = err instanceof UsageError || err instanceof ConfigError || /^cannot /.test(err.message)
  process.stderr.write(`clawmatrix: ${known ? err.message : err.stack}\n`)
  process.exit(err instanceof UsageError ? 2 : 1)
})
