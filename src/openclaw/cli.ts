/**
 * `openclaw clawmatrix ...`: runs in the CLI process, which has no mesh
 * node of its own, so every subcommand asks the running gateway through a
 * gateway method (./gateway-methods.ts).
 */
import { formatStatus } from '../services/status-format.js'
import { CLI_COMMAND } from './manifest.js'
import { METHOD_MODELS, METHOD_STATUS } from './gateway-methods.js'
import { PROVIDER_ID, type ProviderEntry } from './models.js'
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
        return opts.json === true ? JSON.stringify(status, null, 2) : formatStatus(status)
      })
    })

  withGatewayOptions(root.command('models')
    .description(`The models.providers.${PROVIDER_ID} entry that lets agents use clawmatrix/<model>, from the live cluster`)
    .option('--json', 'Print only the provider entry as JSON', false))
    .action(async (opts: Record<string, unknown>) => {
      await run(async () => {
        const entry = await ask(caller(opts), METHOD_MODELS, gateway.isGatewayTransportError) as ProviderEntry
        return opts.json === true ? JSON.stringify(entry, null, 2) : formatProviderEntry(entry)
      })
    })
}

export function formatProviderEntry (entry: ProviderEntry): string {
  const json = JSON.stringify(entry)
  const models = entry.models.length === 0 ? '  (none: no node offers a model yet)' : entry.models.map(m => `  ${PROVIDER_ID}/${m.id}  ${m.name}`).join('\n')
  return [
    `models the cluster offers, through ${entry.baseUrl}:`,
    models,
    '',
    'to let agents on this gateway use them, add the provider entry:',
    `  openclaw config set models.providers.${PROVIDER_ID} '${json.replaceAll('\'', '\'\\\'\'')}' --strict-json --merge`,
    `then select one, e.g. agents.defaults.model: "${PROVIDER_ID}/${entry.models[0]?.id ?? '<model-id>'}"`
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
