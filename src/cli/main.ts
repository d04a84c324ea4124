#!/usr/bin/env node
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util'
import { parseConfig, readConfigFile } from '../config/load.js'
import { DEFAULT_LISTEN_PORT, DEFAULT_PROXY_PORT } from '../config/schema.js'
import { escapeControl } from '../node/escape.js'
import { AUDIT_FILE, formatAuditEntry, readAudit, type AuditEntry } from '../services/audit/audit-log.js'
import { VERSION } from '../version.js'
import { runDemo } from './demo.js'
import { COMMAND_HELP, wantsHelp } from './help.js'
import { defaultStateDir, runUntilSignal, SECRET_ENV } from './run-node.js'
import { formatStatus } from '../services/status-format.js'
import { inspectCommand } from './inspect.js'
import { peersCommand } from './peers.js'
import { initCommand, inviteCommand, joinCommand, revokeCommand } from './membership.js'
import { loadJoinedState, withJoinedState } from '../membership/index.js'
import { submitTask, taskCommand, tasksCommand } from './tasks.js'
import { callNode, contentOf, getFromNode, type WorkEndpoint } from './work.js'
import { describeFailure, exitCodeOf, UsageError, WorkCallError } from './errors.js'
import type { NodeStatus } from '../services/status.js'

const USAGE = `clawmatrix ${VERSION}: a libp2p mesh of OpenClaw gateways

usage:
  clawmatrix demo                                    a local 3-node mesh, no config needed
  clawmatrix node --config <file.json> [--state-dir <dir>]
  clawmatrix relay [--listen-host H] [--listen-port P] [--proxy-port P] [--node-id ID] [--state-dir D]
  clawmatrix status [--host H] [--port N] [--json]
  clawmatrix peers [--host H] [--port N] [--json]     live libp2p connections and their streams
  clawmatrix audit [--state-dir D | --port N] [--follow] [--json]   calls this node ran for others
  clawmatrix inspect <url|multiaddr> [--json]         identify, ping and the cluster view of a member

managed clusters (certified names, revocation; see docs/gate.md):
  clawmatrix init [--authority-dir D]                 a cluster authority and secret, kept off the nodes
  clawmatrix invite <nodeId> [--tags a,b] [--expires 30d] [--bootstrap URL] [--new-key] [--authority-dir D]
  clawmatrix join <token|-> [--state-dir D]           installs an invite ("-" reads it from stdin)
  clawmatrix revoke <nodeId|peerId> [--authority-dir D] [--host H] [--port N]

work, through a running node (its --port, default ${DEFAULT_PROXY_PORT}); a target is an agent id, a node id or tags:<tag>[,<tag>]:
  clawmatrix handoff <target> <task> [--context TEXT] [--timeout SECONDS] [--no-wait] [--context-id ID]
  clawmatrix task <id> [--follow] [--message TEXT] [--cancel]   a task started from this node (docs/tasks.md)
  clawmatrix tasks                                   the tasks started from this node, newest first
  clawmatrix send <target> <message>
  clawmatrix exec <node> <command> [--workdir DIR] [--timeout SECONDS]   exits with the remote exit code
  clawmatrix read <node> <path> [--offset LINE] [--limit LINES]
  clawmatrix write <node> <path> [--content TEXT | --from FILE | stdin]
  clawmatrix tool <node> <tool> <json-args> [--timeout SECONDS]
  (each also takes [--host H] [--port N] [--json])

The secret comes from the config file or the ${SECRET_ENV} environment variable, never from argv.
Commands that talk to a node whose config sets proxyToken read it from CLAWMATRIX_PROXY_TOKEN.
Debug logs: DEBUG='clawmatrix:*' (add ',libp2p:*' for the swarm underneath).
clawmatrix <command> --help says what a command does and what each of its options does.`

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  if (rest.some(arg => arg === '--secret' || arg.startsWith('--secret='))) {
    throw new UsageError(`the secret is never taken from the command line (it would show in ps and shell history); set ${SECRET_ENV} or put it in the config file`)
  }
  if (command != null && wantsHelp(rest) && COMMAND_HELP[command] != null) {
    process.stdout.write(COMMAND_HELP[command] + '\n')
    return
  }
  switch (command) {
    case 'demo': return runDemo()
    case 'node': return nodeCommand(rest)
    case 'relay': return relayCommand(rest)
    case 'status': return statusCommand(rest)
    case 'audit': return auditCommand(rest)
    case 'peers': return peersCommand(rest)
    case 'inspect': return inspectCommand(rest)
    case 'init': {
      const { values } = parse(rest, { 'authority-dir': { type: 'string' } })
      return initCommand({ authorityDir: values['authority-dir'] })
    }
    case 'invite': {
      const { values, positionals } = parsePositional(rest, 1, '<nodeId>', {
        tags: { type: 'string' }, expires: { type: 'string' }, bootstrap: { type: 'string' }, 'new-key': { type: 'boolean' }, 'authority-dir': { type: 'string' }
      })
      return inviteCommand({ nodeId: positionals[0]!, tags: values.tags, expires: values.expires, bootstrap: values.bootstrap, newKey: values['new-key'], authorityDir: values['authority-dir'] })
    }
    case 'join': {
      const { values, positionals } = parsePositional(rest, 1, '<token|->', { 'state-dir': { type: 'string' } })
      return joinCommand(positionals[0]!, { stateDir: values['state-dir'] })
    }
    case 'revoke': {
      const { values, positionals } = parsePositional(rest, 1, '<nodeId|peerId>', { 'authority-dir': { type: 'string' }, host: { type: 'string' }, port: { type: 'string' } })
      return revokeCommand(positionals[0]!, { authorityDir: values['authority-dir'], host: values.host, port: portArg(values.port, '--port', DEFAULT_PROXY_PORT) })
    }
    case 'handoff': case 'send': case 'exec': case 'read': case 'write': case 'tool': case 'task': case 'tasks':
      return workCommand(command, rest)
    case 'help': case '--help': case '-h':
      process.stdout.write((COMMAND_HELP[rest[0] ?? ''] ?? USAGE) + '\n')
      return
    case undefined:
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
  let json = await readConfigFile(values.config) as Record<string, unknown>
  if (typeof json?.nodeId !== 'string' && values['state-dir'] == null) {
    throw new UsageError('the config names no nodeId: give the joined node\'s --state-dir, where its certificate names it')
  }
  const stateDir = values['state-dir'] ?? defaultStateDir(String(json.nodeId))
  json = withJoinedState(json, await loadJoinedState(stateDir))
  const secret = process.env[SECRET_ENV]
  const config = parseConfig(json?.secret == null && json?.secrets == null && secret != null ? { ...json, secret } : json, values.config)
  await runUntilSignal(config, stateDir)
}

async function relayCommand (args: string[]): Promise<void> {
  const { values } = parse(args, {
    'listen-host': { type: 'string' },
    'listen-port': { type: 'string' },
    'proxy-port': { type: 'string' },
    'node-id': { type: 'string' },
    'state-dir': { type: 'string' }
  })
  const stateDir = values['state-dir'] ?? defaultStateDir(values['node-id'] ?? 'relay')
  // A relay that joined a managed cluster takes its name and secret from its state directory.
  const joined = await loadJoinedState(stateDir)
  const secret = process.env[SECRET_ENV]
  if ((secret == null || secret === '') && joined == null) throw new UsageError(`clawmatrix relay needs the cluster secret in ${SECRET_ENV}, or a --state-dir it joined with \`clawmatrix join\``)
  const config = parseConfig(withJoinedState({
    nodeId: values['node-id'] ?? joined?.certificate.nodeId ?? 'relay',
    ...(secret == null || secret === '' ? {} : { secret }),
    listen: true,
    listenHost: values['listen-host'] ?? '0.0.0.0',
    listenPort: portArg(values['listen-port'], '--listen-port', DEFAULT_LISTEN_PORT),
    proxyPort: portArg(values['proxy-port'], '--proxy-port', DEFAULT_PROXY_PORT)
  }, joined), 'relay options')
  await runUntilSignal(config, stateDir)
}

async function statusCommand (args: string[]): Promise<void> {
  const { values } = parse(args, { host: { type: 'string' }, port: { type: 'string' }, json: { type: 'boolean' } })
  const url = `http://${values.host ?? '127.0.0.1'}:${portArg(values.port, '--port', DEFAULT_PROXY_PORT)}/clawmatrix/status`
  const status = await getFromNode<NodeStatus>(url)
  process.stdout.write((values.json === true ? JSON.stringify(status, null, 2) : formatStatus(status)) + '\n')
}

/** Prints the audit log, from the state directory or the running node, once or as it grows. */
async function auditCommand (args: string[]): Promise<void> {
  const { values } = parse(args, { 'state-dir': { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, follow: { type: 'boolean' }, json: { type: 'boolean' } })
  const stateDir = values['state-dir']
  const url = `http://${values.host ?? '127.0.0.1'}:${portArg(values.port, '--port', DEFAULT_PROXY_PORT)}/clawmatrix/audit`
  const read = async (after: number): Promise<{ entries: AuditEntry[], next: number }> => {
    if (stateDir != null) return readAudit(join(stateDir, AUDIT_FILE), after)
    return getFromNode(`${url}?after=${after}`, 'is it running, and is --port its proxyPort? (or read a state directory with --state-dir)')
  }
  const stop = new AbortController()
  const onSignal = (): void => { stop.abort() }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    let after = 0
    do {
      const { entries, next } = await read(after)
      after = next
      // Entries hold what callers sent (commands, paths): one escaped line each.
      for (const entry of entries) process.stdout.write(escapeControl(values.json === true ? JSON.stringify(entry) : formatAuditEntry(entry)) + '\n')
      if (values.follow === true) await sleep(AUDIT_FOLLOW_INTERVAL_MS, undefined, { signal: stop.signal }).catch(() => {})
    } while (values.follow === true && !stop.signal.aborted)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

const AUDIT_FOLLOW_INTERVAL_MS = 500

const WORK_OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  context: { type: 'string' },
  workdir: { type: 'string' },
  offset: { type: 'string' },
  limit: { type: 'string' },
  content: { type: 'string' },
  from: { type: 'string' },
  'no-wait': { type: 'boolean' },
  'context-id': { type: 'string' },
  follow: { type: 'boolean' },
  message: { type: 'string' },
  cancel: { type: 'boolean' }
} as const

/** The caller API from a shell: each command is one call to a running node's local endpoint. */
async function workCommand (command: string, args: string[]): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({ args, options: WORK_OPTIONS, allowPositionals: true, strict: true })
  } catch (err: any) {
    throw new UsageError(`${err.message}\n\n${USAGE}`)
  }
  const { values, positionals } = parsed
  const need = (count: number, names: string): string[] => {
    if (positionals.length < count) throw new UsageError(`clawmatrix ${command} needs ${names}\n\n${USAGE}`)
    return positionals
  }
  const endpoint: WorkEndpoint = { host: values.host ?? '127.0.0.1', port: portArg(values.port, '--port', DEFAULT_PROXY_PORT), json: values.json === true }
  const timeoutMs = values.timeout == null ? undefined : positiveInt(values.timeout, '--timeout') * 1000
  const print = (text: string): void => { process.stdout.write(text.endsWith('\n') ? text : text + '\n') }
  switch (command) {
    case 'task': {
      const [id] = need(1, '<id>')
      await taskCommand(endpoint, id!, { follow: values.follow, cancel: values.cancel, message: values.message })
      return
    }
    case 'tasks':
      await tasksCommand(endpoint)
      return
    case 'handoff': {
      if (values['no-wait'] === true || values['context-id'] != null) {
        // A conversation is continued by its id alone: the task goes where the conversation is.
        const [target, ...task] = values['context-id'] != null && positionals.length === 1 ? [undefined, ...positionals] : need(2, '<target> <task>')
        // Without --no-wait a continued conversation is followed to its end, as a hand-off waits.
        await submitTask(endpoint, { target, task: task.join(' '), context: values.context, contextId: values['context-id'], timeoutMs }, values['no-wait'] !== true)
        return
      }
      const [target, ...task] = need(2, '<target> <task>')
      const result = await callNode(endpoint, 'handoff', { target, task: task.join(' '), context: values.context, timeoutMs })
      print(endpoint.json ? JSON.stringify(result, null, 2) : result.reply)
      return
    }
    case 'send': {
      const [target, ...message] = need(2, '<target> <message>')
      const result = await callNode(endpoint, 'send', { target, message: message.join(' '), timeoutMs })
      print(endpoint.json ? JSON.stringify(result, null, 2) : `delivered to ${result.agentId} on ${result.nodeId}${result.duplicate === true ? ' (already delivered before)' : ''}`)
      return
    }
    case 'exec': {
      const [node, ...commandLine] = need(2, '<node> <command>')
      const result = await callNode(endpoint, 'tool', { node, tool: 'exec', args: { command: commandLine.join(' '), workdir: values.workdir }, timeoutMs })
      if (endpoint.json) print(JSON.stringify(result, null, 2))
      const exitCode = result.details?.exitCode
      if (typeof exitCode === 'number' && exitCode !== 0) process.exitCode = exitCode
      else if (result.details?.signal != null) throw new WorkCallError(`the command was ended by ${String(result.details.signal)} on ${result.nodeId}`)
      return
    }
    case 'read': {
      const [node, path] = need(2, '<node> <path>')
      const range = { offset: values.offset == null ? undefined : positiveInt(values.offset, '--offset'), limit: values.limit == null ? undefined : positiveInt(values.limit, '--limit') }
      const result = await callNode(endpoint, 'tool', { node, tool: 'read', args: { path, ...range }, timeoutMs })
      if (endpoint.json) print(JSON.stringify(result, null, 2))
      return
    }
    case 'write': {
      const [node, path] = need(2, '<node> <path>')
      const content = await contentOf(values.content, values.from)
      const result = await callNode(endpoint, 'tool', { node, tool: 'write', args: { path, content }, timeoutMs })
      // Without --json the node's own report ("wrote N bytes to ...") has been printed already.
      if (endpoint.json) print(JSON.stringify(result, null, 2))
      return
    }
    case 'tool': {
      const [node, tool, json = '{}'] = need(2, '<node> <tool> [json-args]')
      let toolArgs: unknown
      try {
        toolArgs = JSON.parse(json)
      } catch (err: any) {
        throw new UsageError(`<json-args>: not valid JSON (${err.message})`)
      }
      const result = await callNode(endpoint, 'tool', { node, tool, args: toolArgs, timeoutMs })
      if (endpoint.json) print(JSON.stringify(result, null, 2))
      else if (Object.keys(result.details ?? {}).length > 0) process.stderr.write(`${JSON.stringify(result.details)}\n`)
      return
    }
  }
}

function positiveInt (value: string, flag: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag}: got "${value}"; expected a positive whole number`)
  return n
}

function parse<O extends ParseArgsOptionsConfig> (args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true })
  } catch (err: any) {
    throw new UsageError(`${err.message}\n\n${USAGE}`)
  }
}

function parsePositional<O extends ParseArgsOptionsConfig> (args: string[], count: number, names: string, options: O) {
  let parsed
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (err: any) {
    throw new UsageError(`${err.message}\n\n${USAGE}`)
  }
  if (parsed.positionals.length !== count) throw new UsageError(`expected ${names}, got ${parsed.positionals.length} argument(s)\n\n${USAGE}`)
  return parsed
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
  process.exit(process.exitCode ?? 0)
}, (err: any) => {
  // A work error carries what the remote node wrote: one escaped line.
  const message = err?.name === 'WorkCallError' ? escapeControl(err.message) : describeFailure(err)
  process.stderr.write(`clawmatrix: ${message}\n`)
  process.exit(exitCodeOf(err))
})
