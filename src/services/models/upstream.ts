/**
 * What the hosting node calls to serve a model: one adapter per configured
 * model, speaking the OpenAI chat-completions API to its caller whatever the
 * upstream's own dialect is.
 */
import type { ModelDialect } from '../../config/schema.js'
import type { ComponentLogger } from '@libp2p/interface'
import type { UpstreamConnections } from './upstream-http.js'

/** The OpenAI-compatible routes a model can be asked for, relative to /v1. */
export const MODEL_ROUTES = ['chat/completions', 'completions', 'embeddings', 'responses'] as const
export type ModelRoute = typeof MODEL_ROUTES[number]

/**
 * Where and how to reach a model's upstream, with the key already looked up.
 * It stays on the hosting node: nothing in it is sent over the mesh.
 */
export interface UpstreamTarget {
  /** e.g. http://127.0.0.1:11434/v1 (openai) or https://api.anthropic.com (anthropic) */
  baseUrl: string
  dialect: ModelDialect
  apiKey?: string
  /** The model name the upstream knows; replaces the client's `model`. */
  upstreamModel: string
  /** Extra request headers some providers want (never logged). */
  headers?: Record<string, string>
}

export interface UpstreamInit {
  /**
   * Time to the upstream's response headers (DEFAULT_RESPONSE_TIMEOUT_MS).
   *
   * @default 300000
   */
  responseTimeoutMs?: number
  /**
   * Longest silence between body chunks (DEFAULT_IDLE_TIMEOUT_MS).
   *
   * @default 120000
   */
  idleTimeoutMs?: number
  /**
   * The kept connections the requests go out on, owned by whoever made them
   * (LocalModels: one per node, destroyed at its stop), who also sets how
   * long one may idle (UpstreamConnectionsInit). Without them every request
   * opens its own connection and closes it after the answer.
   */
  connections?: UpstreamConnections
  /**
   * Anthropic only: max_tokens when the client sets none (DEFAULT_ANTHROPIC_MAX_TOKENS).
   *
   * @default 4096
   */
  defaultMaxTokens?: number
  /** The node's logger (../../node/logging.ts `nodeLogger`), so every line says which node it is. */
  logger: ComponentLogger
}

export interface ModelRequest {
  route: ModelRoute
  /** The client's JSON body, as an OpenAI client sent it. */
  body: Record<string, unknown>
  /** Aborting it cancels the upstream HTTP request. */
  signal?: AbortSignal
}

/** Tokens an answer took, from the upstream's own `usage`. */
export interface TokenUsage {
  /** Prompt tokens (`prompt_tokens`, or `input_tokens` in the Responses API). */
  input: number
  /** Generated tokens (`completion_tokens` / `output_tokens`). */
  output: number
}

export interface ModelResponse {
  /** The upstream's success status (200). Failures are thrown as UpstreamError instead. */
  status: number
  /** 'text/event-stream' for a stream, else 'application/json'. */
  contentType: string
  /**
   * The body in OpenAI format, pulled on demand: a slow reader slows the
   * upstream read. A stream yields whole SSE events, as they arrive, and ends
   * with `data: [DONE]`; a JSON answer comes as one chunk.
   *
   * It ends normally ONLY when the upstream finished its answer. A cut
   * connection, a stream without its end, an error event mid-stream or a
   * stall throws UpstreamError (after yielding what did arrive); the
   * request's abort throws the signal's reason. Leaving the iteration early
   * cancels the upstream request.
   */
  body: AsyncIterable<Uint8Array>
  /** The upstream's usage, once the body was read to its end (when it said). */
  usage?: () => TokenUsage | undefined
}

export interface ModelUpstream {
  readonly dialect: ModelDialect
  /**
   * Sends one request. Resolves once the upstream started answering with a
   * success; rejects with UpstreamError for a refusal (its status and an
   * OpenAI-style body), an unreachable or silent upstream, or a request this
   * dialect cannot carry.
   */
  request(request: ModelRequest): Promise<ModelResponse>
}
