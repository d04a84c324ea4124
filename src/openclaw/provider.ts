/**
 * `clawmatrix` as an OpenClaw model provider: agents select
 * `clawmatrix/<model-id>` and OpenClaw sends the turn to this node's local
 * OpenAI-compatible proxy, which forwards it to whichever node hosts the
 * model. Nothing is pasted into `models.providers`:
 *
 * - the catalog is the cluster's models now (from the running node in the
 *   gateway process, from the node's `GET /v1/models` in a CLI process);
 * - any model id resolves (`resolveDynamicModel`), so a model that joins the
 *   cluster is usable at once, and one that left fails with the proxy's own
 *   404, which lists what the cluster offers;
 * - the key is the proxy's own (a no-secret marker on loopback, or the
 *   node's `proxyToken`): `resolveSyntheticAuth`, and CLAWMATRIX_PROVIDER_KEY
 *   for an agent turn (models.ts, exposeProviderKey).
 */
import { DEFAULT_PROXY_PORT } from '../config/schema.js'
import { PLUGIN_ID } from './manifest.js'
import { PROVIDER_API_KEY, PROVIDER_ID, type ProviderModel } from './provider-key.js'
import type { MeshRuntime } from './runtime.js'

/** How long a catalog call waits for the node's model list before showing none. */
export const CATALOG_FETCH_TIMEOUT_MS = 3_000

/**
 * How long OpenClaw keeps the cluster's models before it asks again. The
 * cluster changes while the gateway runs (a node joins with a model, one
 * leaves; at startup the node is not up yet when OpenClaw first asks), and
 * OpenClaw refreshes a provider's catalog only once its result expires: it
 * reads the deadline from its live-catalog cache, so the list goes through
 * that cache, empty answers included.
 */
export const CATALOG_TTL_MS = 15_000

/** What OpenClaw assumes of a model it knows nothing more about (it shows them; the upstream decides). */
const MODEL_DEFAULTS = {
  reasoning: false,
  input: ['text'] as Array<'text'>,
  cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
  contextWindow: 128_000,
  maxTokens: 8_192
}

/** Where this gateway reaches its node's proxy, read from `plugins.entries.clawmatrix.config`. */
export interface ProxyEndpoint {
  baseUrl: string
  /** The node's proxyToken, when it has one. */
  token?: string
}

export function proxyEndpointOf (openclawConfig: unknown): ProxyEndpoint | undefined {
  const entry = (openclawConfig as { plugins?: { entries?: Record<string, { config?: unknown, enabled?: unknown }> } } | undefined)?.plugins?.entries?.[PLUGIN_ID]
  if (entry == null || entry.enabled === false || entry.config == null || typeof entry.config !== 'object') return undefined
  const { proxyHost, proxyPort, proxyToken } = entry.config as { proxyHost?: unknown, proxyPort?: unknown, proxyToken?: unknown }
  const host = typeof proxyHost === 'string' && !['0.0.0.0', '::', '[::]'].includes(proxyHost) ? proxyHost : '127.0.0.1'
  const port = typeof proxyPort === 'number' ? proxyPort : DEFAULT_PROXY_PORT
  const endpoint: ProxyEndpoint = { baseUrl: `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}/v1` }
  if (typeof proxyToken === 'string' && proxyToken !== '') endpoint.token = proxyToken
  return endpoint
}

/** The part of `openclaw/plugin-sdk/provider-catalog-live-runtime` used here (the SDK ships no types for it). */
interface LiveCatalogRuntime {
  getCachedLiveProviderModelRows: (params: {
    providerId: string
    endpoint: string
    apiKey?: string
    ttlMs: number
    timeoutMs: number
    signal?: AbortSignal
    shouldCacheRows: (rows: unknown[]) => boolean
    fetchGuard: (request: { url: string, init?: RequestInit, signal?: AbortSignal, timeoutMs?: number }) => Promise<{ response: Response, finalUrl: string, release: () => Promise<void> }>
  }) => Promise<unknown[]>
}

/** One row of the node's `GET /v1/models`. */
interface ModelRow {
  id: string
  clawmatrix?: { nodes?: unknown }
}

/**
 * The cluster's models, as OpenClaw catalog rows: from the node itself when
 * it runs in this process, else from its proxy (a CLI process, OpenClaw's
 * catalog worker); none when neither answers, which OpenClaw shows as an
 * empty provider until the result expires (CATALOG_TTL_MS).
 */
export async function clusterModels (runtime: Pick<MeshRuntime, 'current'> | undefined, endpoint: ProxyEndpoint, signal?: AbortSignal): Promise<ProviderModel[]> {
  const specifier = 'openclaw/plugin-sdk/provider-catalog-live-runtime'
  const live = await import(specifier) as LiveCatalogRuntime
  try {
    const rows = await live.getCachedLiveProviderModelRows({
      providerId: PROVIDER_ID,
      endpoint: `${endpoint.baseUrl}/models`,
      apiKey: endpoint.token,
      ttlMs: CATALOG_TTL_MS,
      timeoutMs: CATALOG_FETCH_TIMEOUT_MS,
      signal,
      // an empty cluster, or a node not up yet, is an answer too: it expires like any other
      shouldCacheRows: () => true,
      fetchGuard: async request => ({ response: await modelsResponse(runtime, request), finalUrl: request.url, release: async () => {} })
    })
    return (rows as ModelRow[]).filter(row => typeof row?.id === 'string').map(row => {
      const nodes = Array.isArray(row.clawmatrix?.nodes) ? row.clawmatrix.nodes.join(', ') : ''
      return { id: row.id, name: `${row.id} (clawmatrix: ${nodes})`, input: ['text'] }
    })
  } catch {
    // a refused token or a malformed answer: no rows, and OpenClaw keeps no deadline for them
    return []
  }
}

/** The node's `GET /v1/models`: answered here when the node runs in this process; an empty list when it does not answer. */
async function modelsResponse (runtime: Pick<MeshRuntime, 'current'> | undefined, request: { url: string, init?: RequestInit, signal?: AbortSignal, timeoutMs?: number }): Promise<Response> {
  const node = runtime?.current
  if (node != null) {
    const { modelsOffered } = await import('../services/cluster/cluster-view.js')
    return Response.json({ object: 'list', data: modelsOffered(node.view.nodes()).map(({ id, nodes }) => ({ id, object: 'model', clawmatrix: { nodes } })) })
  }
  const timeout = AbortSignal.timeout(request.timeoutMs ?? CATALOG_FETCH_TIMEOUT_MS)
  try {
    return await fetch(request.url, { ...request.init, signal: request.signal == null ? timeout : AbortSignal.any([request.signal, timeout]) })
  } catch (err) {
    if (request.signal?.aborted === true) throw err
    return Response.json({ object: 'list', data: [] })
  }
}

/** A catalog row or a dynamically resolved model: OpenClaw's runtime model shape. */
function runtimeModel (id: string, name: string, baseUrl: string): Record<string, unknown> {
  return { id, name, provider: PROVIDER_ID, api: 'openai-completions', baseUrl, ...MODEL_DEFAULTS }
}

/** The key for the node's proxy: its proxyToken, else a marker OpenClaw knows is no secret. */
function syntheticAuth (ctx: { config?: unknown }): { apiKey: string, source: string, mode: 'api-key' } | undefined {
  const endpoint = proxyEndpointOf(ctx.config)
  if (endpoint == null) return undefined
  return { apiKey: endpoint.token ?? PROVIDER_API_KEY, source: `the clawmatrix node's model proxy (${endpoint.baseUrl})`, mode: 'api-key' }
}

/** The argument of `api.registerProvider` (typed loosely: the SDK marks these hooks experimental). */
export function clawmatrixProvider (runtime?: Pick<MeshRuntime, 'current'>): Record<string, unknown> {
  return {
    id: PROVIDER_ID,
    label: 'clawmatrix cluster',
    auth: [],
    catalog: {
      // a plain provider: a hand-written models.providers.clawmatrix entry still wins
      order: 'simple',
      run: async (ctx: { config: unknown, signal?: AbortSignal, providerIds?: readonly string[] }) => {
        if (ctx.providerIds != null && !ctx.providerIds.includes(PROVIDER_ID)) return null
        const endpoint = proxyEndpointOf(ctx.config)
        if (endpoint == null) return null
        const models = await clusterModels(runtime, endpoint, ctx.signal)
        return {
          provider: {
            baseUrl: endpoint.baseUrl,
            api: 'openai-completions',
            // a marker, never the token: OpenClaw may write catalogs to disk; the token comes from resolveSyntheticAuth
            apiKey: PROVIDER_API_KEY,
            models: models.map(model => ({ ...MODEL_DEFAULTS, id: model.id, name: model.name }))
          }
        }
      }
    },
    // asked when OpenClaw checks which providers have auth (startup, model lists); an agent turn's key
    // comes from CLAWMATRIX_PROVIDER_KEY instead (see exposeProviderKey)
    resolveSyntheticAuth: syntheticAuth,
    // Any id: the proxy knows the cluster's models now, and answers 404 with the list for one it does not have.
    resolveDynamicModel: (ctx: { config?: unknown, modelId: string }) => {
      const endpoint = proxyEndpointOf(ctx.config)
      if (endpoint == null) return undefined
      return runtimeModel(ctx.modelId, `${ctx.modelId} (clawmatrix)`, endpoint.baseUrl)
    },
    buildMissingAuthMessage: () => 'clawmatrix needs no key: enable the clawmatrix plugin and set plugins.entries.clawmatrix.config'
  }
}
