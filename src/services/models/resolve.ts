/** From a model's config entry to a ready adapter. */
import { AnthropicUpstream } from './anthropic-upstream.js'
import { PROVIDER_BASE_URLS } from './constants.js'
import { OpenAIUpstream } from './openai-upstream.js'
import type { ModelUpstream, UpstreamInit, UpstreamTarget } from './upstream.js'
import type { ModelConfig } from '../../config/schema.js'

/** The adapter for a target's dialect. */
export function createUpstream (target: UpstreamTarget, init: UpstreamInit): ModelUpstream {
  return target.dialect === 'anthropic' ? new AnthropicUpstream(target, init) : new OpenAIUpstream(target, init)
}

/**
 * Resolves a standalone node's model entry: the base URL (a well-known
 * provider's default when unset), the key from `process.env[apiKeyEnv]`, the
 * upstream model name. Throws an Error naming the field; never the key.
 */
export function resolveUpstreamTarget (model: ModelConfig, env: NodeJS.ProcessEnv = process.env): UpstreamTarget {
  const dialect = model.dialect ?? 'openai'
  const where = `model "${model.id}"`
  const baseUrl = model.baseUrl ?? PROVIDER_BASE_URLS[model.provider.toLowerCase()]?.[dialect]
  if (baseUrl == null) {
    throw new Error(`${where}: baseUrl is not set and provider "${model.provider}" has no default; expected e.g. "http://127.0.0.1:11434/v1"`)
  }
  let url: URL
  try {
    url = new URL(baseUrl)
  } catch {
    throw new Error(`${where}: baseUrl ${JSON.stringify(baseUrl)} is not a URL; expected e.g. "http://127.0.0.1:11434/v1"`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`${where}: baseUrl must be http:// or https://, got ${url.protocol}`)
  }
  const target: UpstreamTarget = { baseUrl, dialect, upstreamModel: model.upstreamModel ?? model.id }
  if (model.apiKeyEnv != null) {
    const key = env[model.apiKeyEnv]
    if (key == null || key.trim() === '') {
      throw new Error(`${where}: the environment variable ${model.apiKeyEnv} (apiKeyEnv) is not set on this node`)
    }
    target.apiKey = key.trim()
  }
  return target
}
