/** Limits and defaults of the model upstream adapters. */

/** Time to the upstream's response headers. A local model may load for a while before it answers. */
export const DEFAULT_RESPONSE_TIMEOUT_MS = 300_000
/** Longest silence between two body chunks before the upstream is taken as stalled. */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000
/**
 * A kept connection to an upstream that carried nothing for this long is
 * closed by the node (undici's default too): an idle node holds no sockets,
 * and closing first avoids racing the upstream's own keep-alive timeout
 * (Node's server default is 5 s). An upstream that hints a shorter
 * `Keep-Alive: timeout` is obeyed.
 */
export const DEFAULT_IDLE_SOCKET_MS = 4_000
/** After a stream's end marker, the rest of its HTTP body is read for this long at most, to keep the connection. */
export const DRAIN_MS = 1_000
/** ... and up to this many bytes; a body that goes on is closed instead. */
export const DRAIN_MAX_BYTES = 64 * 1024
/** An upstream error body is read up to this size; the rest is dropped. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024
/** A non-streamed answer (a completion, a batch of embeddings) is read whole, up to this size. */
export const MAX_JSON_RESPONSE_BYTES = 64 * 1024 * 1024
/** One server-sent event; a tool call's arguments arrive in many small events, so this is generous. */
export const MAX_SSE_EVENT_BYTES = 4 * 1024 * 1024

/** The Messages API version the Anthropic adapter speaks. */
export const ANTHROPIC_VERSION = '2023-06-01'
/** Anthropic requires max_tokens; OpenAI clients often leave it out. Every Claude model accepts this many. */
export const DEFAULT_ANTHROPIC_MAX_TOKENS = 4096

/**
 * Base URLs of well-known providers, used when a model entry has no
 * `baseUrl`. OpenAI-dialect URLs end in /v1 (the OpenAI client convention);
 * the Anthropic Messages URL is the bare origin, as in Anthropic's SDKs.
 */
export const PROVIDER_BASE_URLS: Record<string, { openai?: string, anthropic?: string }> = {
  openai: { openai: 'https://api.openai.com/v1' },
  anthropic: { anthropic: 'https://api.anthropic.com', openai: 'https://api.anthropic.com/v1' },
  openrouter: { openai: 'https://openrouter.ai/api/v1' },
  ollama: { openai: 'http://127.0.0.1:11434/v1' },
  vllm: { openai: 'http://127.0.0.1:8000/v1' },
  lmstudio: { openai: 'http://127.0.0.1:1234/v1' },
  'lm-studio': { openai: 'http://127.0.0.1:1234/v1' }
}
