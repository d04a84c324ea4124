/**
 * The `clawmatrix` provider's names and key, apart from the node: the
 * plugin's register path, the manifest and the CLI read them without loading
 * the cluster code (src/openclaw/models.ts has what needs a running node).
 */

/** The provider id agents select models under: `clawmatrix/<model-id>`. */
export const PROVIDER_ID = 'clawmatrix'

/**
 * Without a proxyToken the proxy needs no key (it listens on loopback), but
 * OpenClaw wants one for an OpenAI-compatible provider; this placeholder is
 * no secret.
 */
export const PROVIDER_API_KEY = 'clawmatrix-local'

/**
 * With a proxyToken, the entry names this variable instead of the token, so
 * the token never shows in command output; OpenClaw substitutes `${VAR}` in
 * config values.
 */
export const PROXY_TOKEN_ENV = 'CLAWMATRIX_PROXY_TOKEN'

/**
 * OpenClaw resolves the key for an agent turn's provider from its config, auth
 * profiles or environment, and (2026.9.6) does not ask a plugin's synthetic
 * auth hooks on that path. The plugin sets this variable in the gateway's own
 * process to the key its proxy takes, and the manifest names it as the
 * provider's (setup.providers[].envVars). Not CLAWMATRIX_PROXY_TOKEN: that one
 * is the CLI's, and a child process must not inherit a marker as a token.
 */
export const PROVIDER_KEY_ENV = 'CLAWMATRIX_PROVIDER_KEY'

/** Sets PROVIDER_KEY_ENV from the plugin config (the node's proxyToken, else the marker), unless set already. */
export function exposeProviderKey (pluginConfig: unknown, env: NodeJS.ProcessEnv = process.env): void {
  if (env[PROVIDER_KEY_ENV] != null && env[PROVIDER_KEY_ENV] !== '') return
  const token = (pluginConfig as { proxyToken?: unknown } | undefined)?.proxyToken
  env[PROVIDER_KEY_ENV] = typeof token === 'string' && token !== '' ? token : PROVIDER_API_KEY
}

export interface ProviderModel {
  id: string
  name: string
  input: ['text']
}

/** The `models.providers.clawmatrix` entry for OpenClaw's config. */
export interface ProviderEntry {
  baseUrl: string
  apiKey: string
  api: 'openai-completions'
  models: ProviderModel[]
}
