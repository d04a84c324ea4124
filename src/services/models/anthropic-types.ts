/** The parts of the Anthropic Messages API (2023-06-01) the translation reads and writes. */

export interface AnthropicTextBlock { type: 'text', text: string }
export interface AnthropicImageBlock {
  type: 'image'
  source: { type: 'base64', media_type: string, data: string } | { type: 'url', url: string }
}
export interface AnthropicToolUseBlock { type: 'tool_use', id: string, name: string, input: Record<string, unknown> }
export interface AnthropicToolResultBlock {
  type: 'tool_result'
  tool_use_id: string
  content: string | Array<AnthropicTextBlock | AnthropicImageBlock>
  is_error?: boolean
}

export type AnthropicContentBlock = AnthropicTextBlock | AnthropicImageBlock | AnthropicToolUseBlock | AnthropicToolResultBlock

export interface AnthropicMessageParam {
  role: 'user' | 'assistant'
  content: AnthropicContentBlock[]
}

export interface AnthropicTool {
  name: string
  description?: string
  input_schema: Record<string, unknown>
}

export type AnthropicToolChoice =
  | { type: 'auto' | 'any', disable_parallel_tool_use?: boolean }
  | { type: 'none' }
  | { type: 'tool', name: string, disable_parallel_tool_use?: boolean }

export interface AnthropicRequest {
  model: string
  max_tokens: number
  messages: AnthropicMessageParam[]
  system?: string
  tools?: AnthropicTool[]
  tool_choice?: AnthropicToolChoice
  temperature?: number
  top_p?: number
  top_k?: number
  stop_sequences?: string[]
  metadata?: { user_id: string }
  stream?: boolean
}

export interface AnthropicUsage {
  input_tokens?: number
  output_tokens?: number
  cache_creation_input_tokens?: number | null
  cache_read_input_tokens?: number | null
}

/** A response content block; thinking and server-tool blocks carry other fields. */
export interface AnthropicResponseBlock {
  type: string
  text?: string
  id?: string
  name?: string
  input?: unknown
}

export interface AnthropicMessage {
  id: string
  type: 'message'
  role: 'assistant'
  model: string
  content: AnthropicResponseBlock[]
  stop_reason: string | null
  stop_sequence?: string | null
  usage: AnthropicUsage
}

/** A streamed event's data; `type` repeats the SSE event name. */
export interface AnthropicStreamEvent {
  type: string
  message?: AnthropicMessage
  index?: number
  content_block?: AnthropicResponseBlock
  delta?: { type?: string, text?: string, partial_json?: string, stop_reason?: string | null, stop_sequence?: string | null }
  usage?: AnthropicUsage
  error?: { type?: string, message?: string }
}
