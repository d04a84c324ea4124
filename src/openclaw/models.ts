import { modelsOffered } from '../services/cluster/cluster-view.js'
import { resolveUpstreamTarget } from '../services/models/index.js'
import type { ClawmatrixNode } from '../services/clawmatrix-node.js'
import type { ResolveModelTarget } from '../services/model-proxy/local-models.js'
import type { UpstreamTarget } from '../services/models/index.js'

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

/**
 * The provider entry for this node: its local model proxy as the base URL and
 * every model the cluster offers right now, with the nodes that host it.
 */
export function providerEntry (node: ClawmatrixNode): ProviderEntry {
  return {
    baseUrl: `${loopbackUrl(node.http.url)}/v1`,
    apiKey: (node.config as { proxyToken?: string }).proxyToken == null ? PROVIDER_API_KEY : `\${${PROXY_TOKEN_ENV}}`,
    api: 'openai-completions',
    models: modelsOffered(node.view.nodes()).map(({ id, nodes }) => ({
      id,
      name: `${id} (clawmatrix: ${nodes.join(', ')})`,
      input: ['text']
    }))
  }
}

/** A proxy bound to every interface is still reached by this gateway on loopback. */
function loopbackUrl (url: string): string {
  return url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:')
}

/** The part of an OpenClaw `models.providers.<id>` entry a hosted model needs. */
interface OpenClawProvider {
  baseUrl?: unknown
  apiKey?: unknown
  api?: unknown
}

/**
 * Upstreams for the models this node hosts: a model with its own `baseUrl`
 * keeps it; one without is served by the OpenClaw provider it names
 * (`models.providers.<provider>`: its base URL, key and API), so a gateway
 * shares a model it already uses without repeating its key.
 */
export function openclawModelTargets (openclawConfig: { models?: { providers?: Record<string, OpenClawProvider> } } | undefined): ResolveModelTarget {
  return model => {
    if (model.baseUrl != null) return resolveUpstreamTarget(model)
    const provider = openclawConfig?.models?.providers?.[model.provider]
    if (provider == null || typeof provider.baseUrl !== 'string') {
      // a known public provider (openai, anthropic ...) still has its default URL
      return resolveUpstreamTarget(model)
    }
    const target: UpstreamTarget = {
      baseUrl: provider.baseUrl,
      dialect: provider.api === 'anthropic-messages' ? 'anthropic' : model.dialect,
      upstreamModel: model.upstreamModel ?? model.id
    }
    if (typeof provider.apiKey === 'string' && provider.apiKey !== '') target.apiKey = provider.apiKey
    return target
  }
}
