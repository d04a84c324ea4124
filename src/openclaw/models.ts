import { modelsOffered } from '../services/cluster/cluster-view.js'
import { resolveUpstreamTarget } from '../services/models/index.js'
import { PROVIDER_API_KEY, PROXY_TOKEN_ENV, type ProviderEntry } from './provider-key.js'
import type { ClawmatrixNode } from '../services/clawmatrix-node.js'
import type { ResolveModelTarget } from '../services/model-proxy/local-models.js'
import type { UpstreamTarget } from '../services/models/index.js'

export { exposeProviderKey, PROVIDER_API_KEY, PROVIDER_ID, PROVIDER_KEY_ENV, PROXY_TOKEN_ENV, type ProviderEntry, type ProviderModel } from './provider-key.js'

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
