/** The parts of the OpenAI chat-completions API the Anthropic translation produces. */

export interface OpenAIUsage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  prompt_tokens_details?: { cached_tokens: number }
}

export interface OpenAIToolCall {
  id: string
  type: 'function'
  function: { name: string, arguments: string }
}

export type OpenAIFinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter'

export interface ChatCompletion {
  id: string
  object: 'chat.completion'
  created: number
  model: string
  choices: Array<{
    index: number
    message: { role: 'assistant', content: string | null, refusal: null, tool_calls?: OpenAIToolCall[] }
    logprobs: null
    finish_reason: OpenAIFinishReason
  }>
  usage: OpenAIUsage
}

export interface ChatCompletionChunkToolCall {
  index: number
  id?: string
  type?: 'function'
  function: { name?: string, arguments: string }
}

export interface ChatCompletionChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: Array<{
    index: number
    delta: { role?: 'assistant', content?: string, tool_calls?: ChatCompletionChunkToolCall[] }
    logprobs: null
    finish_reason: OpenAIFinishReason | null
  }>
  usage?: OpenAIUsage | null
}
