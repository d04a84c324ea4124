/**
 * `openclaw clawmatrix ...`: runs in the CLI process, which has no mesh
 * node of its own, so every subcommand asks the running gateway through a
 * gateway method (./gateway-methods.ts). What a subcommand needs is imported
 * when it runs: building the command tree (`--help` too) loads no cluster code.
 */
import { join } from 'node:path'
import { CLI_COMMAND } from './manifest.js'
import { METHOD_MODELS, METHOD_STATUS } from './gateway-methods.js'
import { PROVIDER_ID, type ProviderEntry } from './provider-key.js'
import type { NodeStatus } from '../services/status.js'

/** The part of Commander's Command the CLI uses (OpenClaw hands us its own instance). */
export interface CommandLike {
  command(name: string): CommandLike
  description(text: string): CommandLike
  option(flags: string, description: string, defaultValue?: string | boolean): CommandLike
  action(handler: (...args: any[]) => void | Promise<void>): CommandLike
}

type GatewayCall = (method: string) => Promise<unknown>

/** Registers `clawmatrix status` and `clawmatrix models` on OpenClaw's program. */
export async function registerClawmatrixCli (program: CommandLike): Promise<void> {
  // Loaded only when the CLI is built, never by the gateway's own register().
  const gateway = await import('openclaw/plugin-sdk/gateway-runtime')
  const root = program.command(CLI_COMMAND.name).description(CLI_COMMAND.description)
  const withGatewayOptions = (command: CommandLike): CommandLike => gateway.addGatewayClientOptions(command as any, { timeoutMs: 10_000 }) as unknown as CommandLike
  const caller = (opts: Record<string, unknown>): GatewayCall => async method => gateway.callGatewayFromCli(method, opts, {})

  withGatewayOptions(root.command('status')
    .description('The cluster as the running gateway\'s clawmatrix node sees it')
    .option('--json', 'Print the raw status as JSON', false))
    .action(async (opts: Record<string, unknown>) => {
      await run(async () => {
        const status = await ask(caller(opts), METHOD_STATUS, gateway.isGatewayTransportError) as NodeStatus
        return opts.json === true ? JSON.stringify(status, null, 2) : (await import('../services/status-format.js')).formatStatus(status)
      })
    })

  await registerMembershipVerbs(root)

  withGatewayOptions(root.command('models')
    .description(`The models the cluster offers now, which agents use as ${PROVIDER_ID}/<model>`)
    .option('--json', `Print them as a models.providers.${PROVIDER_ID} entry (JSON)`, false))
    .action(async (opts: Record<string, unknown>) => {
      await run(async () => {
        const entry = await ask(caller(opts), METHOD_MODELS, gateway.isGatewayTransportError) as ProviderEntry
        return opts.json === true ? JSON.stringify(entry, null, 2) : formatProviderEntry(entry)
      })
    })
}

/**
 * The managed-membership verbs, as `clawmatrix init|invite|join|revoke`
 * (docs/gate.md). They need no gateway: init and invite work on the
 * authority directory, join on this gateway's state directory (the node picks
 * it up at its next start), revoke on the running node's local endpoint.
 */
async function registerMembershipVerbs (root: CommandLike): Promise<void> {
  const { resolveStateDir } = await import('openclaw/plugin-sdk/state-paths')
  const clawmatrixStateDir = (): string => join(resolveStateDir(), 'clawmatrix')
  const verbs = async (): Promise<typeof import('../cli/membership.js')> => import('../cli/membership.js')
  root.command('init')
    .description('Create a cluster authority and secret (keep the directory off the running nodes)')
    .option('--authority-dir <dir>', 'Where the authority key goes (default ~/.clawmatrix/authority)')
    .action(async (opts: Record<string, string | undefined>) => { await runVerb(async () => (await verbs()).initCommand({ authorityDir: opts.authorityDir })) })
  root.command('invite <nodeId>')
    .description('Print an invite token for a node: its key, certificate and the cluster secret')
    .option('--tags <a,b>', 'Tags the certificate grants')
    .option('--expires <30d>', 'Certificate lifetime (d, h, m or s; default 365d)')
    .option('--bootstrap <url>', 'A peer the new node dials first')
    .option('--new-key', 'A new key even if the node holds a live certificate', false)
    .option('--authority-dir <dir>', 'The authority directory')
    .action(async (nodeId: string, opts: Record<string, any>) => {
      await runVerb(async () => (await verbs()).inviteCommand({ nodeId, tags: opts.tags, expires: opts.expires, bootstrap: opts.bootstrap, newKey: opts.newKey === true, authorityDir: opts.authorityDir }))
    })
  root.command('join <token>')
    .description('Install an invite in this gateway\'s clawmatrix state ("-" reads the token from stdin)')
    .option('--state-dir <dir>', 'Default: <OpenClaw state dir>/clawmatrix')
    .action(async (token: string, opts: Record<string, string | undefined>) => {
      await runVerb(async () => (await verbs()).joinCommand(token, { stateDir: opts.stateDir ?? clawmatrixStateDir() }))
    })
  root.command('revoke <nodeIdOrPeerId>')
    .description('Sign a revocation and hand it to the running node, which publishes it to the cluster')
    .option('--authority-dir <dir>', 'The authority directory')
    .option('--host <host>', 'The node\'s local endpoint host', '127.0.0.1')
    .option('--port <port>', 'The node\'s proxyPort')
    .action(async (target: string, opts: Record<string, string | undefined>) => {
      await runVerb(async () => (await verbs()).revokeCommand(target, { authorityDir: opts.authorityDir, host: opts.host, port: opts.port == null ? undefined : Number(opts.port) }))
    })
}

async function runVerb (verb: () => Promise<void>): Promise<void> {
  try {
    await verb()
  } catch (err: any) {
    process.stderr.write(`clawmatrix: ${err?.message ?? String(err)}\n`)
    process.exitCode = 1
  }
}

export function formatProviderEntry (entry: ProviderEntry): string {
  const json = JSON.stringify(entry)
  const models = entry.models.length === 0 ? '  (none: no node offers a model yet)' : entry.models.map(m => `  ${PROVIDER_ID}/${m.id}  ${m.name}`).join('\n')
  return [
    `models the cluster offers, through ${entry.baseUrl}:`,
    models,
    '',
    `agents on this gateway use them by name, e.g. agents.defaults.model: "${PROVIDER_ID}/${entry.models[0]?.id ?? '<model-id>'}"`,
    `(the plugin's ${PROVIDER_ID} provider follows the cluster; to pin this list instead:`,
    `  openclaw config set models.providers.${PROVIDER_ID} '${json.replaceAll('\'', '\'\\\'\'')}' --strict-json --merge)`
  ].join('\n')
}

/** A gateway method's answer, or an error a person can act on. */
async function ask (call: GatewayCall, method: string, isTransportError: (err: unknown) => boolean): Promise<unknown> {
  try {
    return await call(method)
  } catch (err: any) {
    if (isTransportError(err) || /ECONNREFUSED|gateway closed|not reachable|connect failed/i.test(String(err?.message))) {
      const reason = String(err?.message ?? err).split('\n')[0]
      throw new Error(`no OpenClaw gateway answered: ${reason}; clawmatrix runs inside the gateway: start it with \`openclaw gateway run\`, or point at it with --url/--port`)
    }
    if (/unknown method/i.test(String(err?.message))) {
      throw new Error(`the running gateway has no clawmatrix plugin loaded (${err.message}); check plugins.entries.clawmatrix.enabled and restart the gateway`)
    }
    throw err
  }
}

async function run (produce: () => Promise<string>): Promise<void> {
  try {
    process.stdout.write(await produce() + '\n')
  } catch (err: any) {
    process.stderr.write(`clawmatrix: ${err?.message ?? String(err)}\n`)
    process.exitCode = 1
  }
}
