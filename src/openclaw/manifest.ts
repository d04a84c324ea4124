/**
 * The OpenClaw manifest (`openclaw.plugin.json`), built from the code it
 * describes: the config schema is ConfigSchema itself and the tool list is
 * the one the plugin registers. `scripts/generate-manifest.mjs` writes it at
 * build time; a test checks the committed file equals this.
 */
import { ConfigSchema } from '../config/schema.js'
import { PROVIDER_API_KEY, PROVIDER_ID, PROVIDER_KEY_ENV } from './provider-key.js'

export const PLUGIN_ID = 'clawmatrix'
export const PLUGIN_NAME = 'clawmatrix'
export const PLUGIN_DESCRIPTION = 'Joins this gateway to a clawmatrix cluster: shared models, task hand-off and a tool proxy between OpenClaw gateways over a libp2p swarm gated by a shared secret.'

/** Every tool the plugin registers; OpenClaw requires the manifest to list them all. */
export const TOOL_NAMES = [
  'cluster_peers',
  'cluster_handoff',
  'cluster_send',
  'cluster_exec',
  'cluster_read',
  'cluster_write',
  'cluster_tool',
  'cluster_task'
] as const

export type ToolName = typeof TOOL_NAMES[number]

/** The provider as OpenClaw loads it without the plugin (src/openclaw/provider-discovery.ts, built). */
export const PROVIDER_CATALOG_ENTRY = './dist/openclaw/provider-discovery.js'

export const CLI_COMMAND = {
  name: 'clawmatrix',
  description: 'Show the clawmatrix cluster of the running gateway',
  hasSubcommands: true
}

/** Form hints for OpenClaw's config UI; keys are config paths, each a field of ConfigSchema (a test checks). */
export const UI_HINTS: Record<string, { label?: string, help?: string, placeholder?: string, sensitive?: boolean, advanced?: boolean }> = {
  nodeId: { label: 'Node id', help: 'This gateway\'s name in the cluster', placeholder: 'office' },
  secret: { label: 'Cluster secret', help: 'Shared by every member; use `openssl rand -hex 32` or "${CLAWMATRIX_SECRET}"', sensitive: true },
  secrets: { label: 'Cluster secrets (rotation)', help: 'Instead of the secret while replacing it: every secret accepted, newest first', sensitive: true, advanced: true },
  listen: { label: 'Accept connections', help: 'On for a node others dial (a public relay); off for a node that only dials out' },
  peers: { label: 'Peers', help: 'Nodes to dial and keep connected: [{nodeId, url}] with ws://, wss:// or a multiaddr' },
  agents: { label: 'Agents offered', help: 'Agents of this gateway other nodes may hand tasks to' },
  models: { label: 'Models offered', help: 'Models this gateway serves to the cluster; upstream keys stay here' },
  tags: { label: 'Tags', help: 'Labels of this node, selected by targets such as tags:gpu' },
  proxyPort: { label: 'Local endpoint port', help: 'Status and the OpenAI-compatible model proxy on 127.0.0.1; must differ from the gateway port' },
  proxyToken: { label: 'Model proxy token', help: 'Bearer token clients of the model proxy must send', sensitive: true, advanced: true },
  toolProxy: { label: 'Tool proxy', help: 'Which tools other nodes may run here' },
  listenHost: { advanced: true },
  listenPort: { advanced: true },
  tls: { advanced: true },
  announceAddresses: { advanced: true },
  proxyHost: { advanced: true },
  heartbeat: { advanced: true },
  reconnect: { advanced: true },
  mesh: { advanced: true }
}

export interface PluginManifest {
  id: string
  name: string
  description: string
  version: string
  activation: { onStartup: boolean }
  providers: string[]
  providerCatalogEntry: string
  setup: { providers: Array<{ id: string, envVars: string[] }> }
  syntheticAuthRefs: string[]
  nonSecretAuthMarkers: string[]
  modelCatalog: { discovery: Record<string, 'runtime'> }
  modelPricing: { providers: Record<string, { external: false }> }
  configSchema: Record<string, unknown>
  uiHints: typeof UI_HINTS
  contracts: { tools: string[] }
  cliCommands: Array<typeof CLI_COMMAND>
}

export function buildManifest (version: string): PluginManifest {
  return {
    id: PLUGIN_ID,
    name: PLUGIN_NAME,
    description: PLUGIN_DESCRIPTION,
    version,
    // The mesh node is a service: it must start with the gateway, not on first use.
    activation: { onStartup: true },
    // `clawmatrix/<model>`: a provider whose catalog is the cluster's models now, needing no key
    providers: [PROVIDER_ID],
    // loaded on its own where OpenClaw lists models or looks up the key, without the plugin's runtime
    providerCatalogEntry: PROVIDER_CATALOG_ENTRY,
    // where OpenClaw looks for the provider's key before an agent turn; the plugin sets it (providerKeyEnv)
    setup: { providers: [{ id: PROVIDER_ID, envVars: [PROVIDER_KEY_ENV] }] },
    syntheticAuthRefs: [PROVIDER_ID],
    nonSecretAuthMarkers: [PROVIDER_API_KEY],
    modelCatalog: { discovery: { [PROVIDER_ID]: 'runtime' } },
    modelPricing: { providers: { [PROVIDER_ID]: { external: false } } },
    // TypeBox schemas are JSON Schema; the round trip drops TypeBox's non-enumerable markers.
    configSchema: JSON.parse(JSON.stringify(ConfigSchema)),
    uiHints: UI_HINTS,
    contracts: { tools: [...TOOL_NAMES] },
    cliCommands: [CLI_COMMAND]
  }
}

/** The manifest file's exact text. */
export function manifestText (version: string): string {
  return JSON.stringify(buildManifest(version), null, 2) + '\n'
}
