/**
 * OpenAI chat completions <-> Anthropic Messages, the request and a whole
 * answer. Streams are in ./anthropic-stream.ts.
 */
import { invalidRequest, typeFromStatus, UpstreamError } from './errors.js'
import type {
  AnthropicContentBlock, AnthropicImageBlock, AnthropicMessage, AnthropicMessageParam, AnthropicRequest,
  AnthropicTextBlock, AnthropicTool, AnthropicToolChoice, AnthropicUsage
} from './anthropic-types.js'
import type { ChatCompletion, OpenAIFinishReason, OpenAIToolCall, OpenAIUsage } from './openai-types.js'

export interface AnthropicRequestOptions {
  upstreamModel: string
  /** max_tokens when the client sets none; Anthropic requires one. */
  defaultMaxTokens: number
}

/**
 * Translates an OpenAI chat-completions body. System and developer messages
 * become the top-level `system`; tool results become `tool_result` blocks in
 * a user turn; consecutive turns of one role are merged, as the Messages API
 * wants user and assistant to alternate. Throws UpstreamError 400 naming the
 * field for what Anthropic cannot express.
 */
export function toAnthropicRequest (body: Record<string, any>, options: AnthropicRequestOptions): AnthropicRequest {
  if (!Array.isArray(body.messages)) throw invalidRequest('messages', `expected an array, got ${describe(body.messages)}`)
  rejectUnsupported(body)

  const system: string[] = []
  const turns: AnthropicMessageParam[] = []
  body.messages.forEach((message: any, i: number) => {
    const where = `messages[${i}]`
    if (message == null || typeof message !== 'object') throw invalidRequest(where, `expected a message object, got ${describe(message)}`)
    switch (message.role) {
      case 'system':
      case 'developer': {
        const text = textOf(message.content, `${where}.content`)
        if (text !== '') system.push(text)
        return
      }
      case 'user':
        addTurn(turns, 'user', userBlocks(message.content, `${where}.content`))
        return
      case 'assistant':
        addTurn(turns, 'assistant', assistantBlocks(message, where))
        return
      case 'tool':
        if (typeof message.tool_call_id !== 'string' || message.tool_call_id === '') {
          throw invalidRequest(`${where}.tool_call_id`, 'expected the id of the tool call this message answers')
        }
        addTurn(turns, 'user', [{ type: 'tool_result', tool_use_id: message.tool_call_id, content: toolResultContent(message.content, `${where}.content`) }])
        return
      default:
        throw invalidRequest(`${where}.role`, `got ${describe(message.role)}; expected "system", "developer", "user", "assistant" or "tool"`)
    }
  })

  const request: AnthropicRequest = {
    model: options.upstreamModel,
    max_tokens: maxTokens(body, options.defaultMaxTokens),
    messages: turns
  }
  if (system.length > 0) request.system = system.join('\n\n')
  if (body.tools != null) request.tools = tools(body.tools)
  const choice = toolChoice(body.tool_choice, body.parallel_tool_calls)
  if (choice != null) request.tool_choice = choice
  if (typeof body.temperature === 'number') request.temperature = body.temperature
  if (typeof body.top_p === 'number') request.top_p = body.top_p
  if (typeof body.top_k === 'number') request.top_k = body.top_k
  const stop = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? body.stop : []
  const stopSequences = stop.filter((s: unknown): s is string => typeof s === 'string' && s.trim() !== '')
  if (stopSequences.length > 0) request.stop_sequences = stopSequences
  if (typeof body.user === 'string' && body.user !== '') request.metadata = { user_id: body.user }
  if (body.stream === true) request.stream = true
  return request
}

/** Parameters whose meaning would be silently lost on the way. */
function rejectUnsupported (body: Record<string, any>): void {
  if (body.n != null && body.n !== 1) throw invalidRequest('n', `got ${describe(body.n)}; the Anthropic upstream gives one choice only`)
  if (body.logprobs === true) throw invalidRequest('logprobs', 'the Anthropic upstream has no log probabilities')
  if (body.functions != null) throw invalidRequest('functions', 'deprecated; send the functions as `tools`')
  const format = body.response_format?.type
  if (format != null && format !== 'text') throw invalidRequest('response_format', `got type ${describe(format)}; the Anthropic upstream only answers text (describe the JSON you want in the prompt)`)
}

function maxTokens (body: Record<string, any>, fallback: number): number {
  const value = body.max_completion_tokens ?? body.max_tokens
  if (value == null) return fallback
  if (!Number.isInteger(value) || value < 1) {
    throw invalidRequest(body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens', `got ${describe(value)}; expected a positive integer`)
  }
  return value
}

function addTurn (turns: AnthropicMessageParam[], role: 'user' | 'assistant', blocks: AnthropicContentBlock[]): void {
  if (blocks.length === 0) return // an empty message: Anthropic refuses empty content
  const last = turns[turns.length - 1]
  if (last?.role === role) {
    // tool results must lead their user turn
    const results = [...last.content, ...blocks].filter(b => b.type === 'tool_result')
    const others = [...last.content, ...blocks].filter(b => b.type !== 'tool_result')
    last.content = [...results, ...others]
  } else {
    turns.push({ role, content: blocks })
  }
}

/** A system/developer message's text; Anthropic has one system prompt. */
function textOf (content: unknown, where: string): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) throw invalidRequest(where, `expected a string or an array of text parts, got ${describe(content)}`)
  return content.map((part: any, j) => {
    if (part?.type !== 'text' || typeof part.text !== 'string') throw invalidRequest(`${where}[${j}]`, `expected a text part, got type ${describe(part?.type)}`)
    return part.text
  }).join('\n')
}

function userBlocks (content: unknown, where: string): AnthropicContentBlock[] {
  if (typeof content === 'string') return textBlock(content)
  if (!Array.isArray(content)) throw invalidRequest(where, `expected a string or an array of content parts, got ${describe(content)}`)
  return content.flatMap((part: any, j): AnthropicContentBlock[] => {
    const at = `${where}[${j}]`
    switch (part?.type) {
      case 'text':
        if (typeof part.text !== 'string') throw invalidRequest(`${at}.text`, 'expected a string')
        return textBlock(part.text)
      case 'image_url':
        return [imageBlock(part.image_url, `${at}.image_url`)]
      default:
        throw invalidRequest(`${at}.type`, `got ${describe(part?.type)}; the Anthropic upstream takes "text" and "image_url" parts`)
    }
  })
}

function textBlock (text: string): AnthropicTextBlock[] {
  return text === '' ? [] : [{ type: 'text', text }]
}

function imageBlock (image: any, where: string): AnthropicImageBlock {
  const url = typeof image === 'string' ? image : image?.url
  if (typeof url !== 'string') throw invalidRequest(`${where}.url`, `expected a data: or https: URL, got ${describe(url)}`)
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  if (data != null) return { type: 'image', source: { type: 'base64', media_type: data[1]!, data: data[2]! } }
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } }
  throw invalidRequest(`${where}.url`, 'expected a base64 data: URL or an http(s) URL')
}

function assistantBlocks (message: any, where: string): AnthropicContentBlock[] {
  const blocks: AnthropicContentBlock[] = []
  const content = message.content
  if (typeof content === 'string') {
    blocks.push(...textBlock(content))
  } else if (Array.isArray(content)) {
    content.forEach((part: any, j) => {
      if (part?.type === 'text' && typeof part.text === 'string') blocks.push(...textBlock(part.text))
      else if (part?.type === 'refusal' && typeof part.refusal === 'string') blocks.push(...textBlock(part.refusal))
      else throw invalidRequest(`${where}.content[${j}].type`, `got ${describe(part?.type)}; expected "text" or "refusal"`)
    })
  } else if (content != null) {
    throw invalidRequest(`${where}.content`, `expected a string, an array of parts or null, got ${describe(content)}`)
  }
  if (message.tool_calls != null) {
    if (!Array.isArray(message.tool_calls)) throw invalidRequest(`${where}.tool_calls`, 'expected an array')
    message.tool_calls.forEach((call: any, j: number) => {
      const at = `${where}.tool_calls[${j}]`
      if (typeof call?.id !== 'string' || typeof call.function?.name !== 'string') {
        throw invalidRequest(at, 'expected {id, type: "function", function: {name, arguments}}')
      }
      blocks.push({ type: 'tool_use', id: call.id, name: call.function.name, input: toolInput(call.function.arguments, `${at}.function.arguments`) })
    })
  }
  return blocks
}

function toolInput (args: unknown, where: string): Record<string, unknown> {
  if (args == null || args === '') return {}
  let parsed: unknown = args
  if (typeof args === 'string') {
    try {
      parsed = JSON.parse(args)
    } catch {
      throw invalidRequest(where, 'is not valid JSON; Anthropic needs tool arguments as a JSON object')
    }
  }
  if (parsed == null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw invalidRequest(where, `expected a JSON object, got ${describe(parsed)}`)
  }
  return parsed as Record<string, unknown>
}

function toolResultContent (content: unknown, where: string): string | Array<AnthropicTextBlock | AnthropicImageBlock> {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) throw invalidRequest(where, `expected a string or an array of content parts, got ${describe(content)}`)
  return userBlocks(content, where) as Array<AnthropicTextBlock | AnthropicImageBlock>
}

function tools (value: unknown): AnthropicTool[] {
  if (!Array.isArray(value)) throw invalidRequest('tools', `expected an array, got ${describe(value)}`)
  return value.map((tool: any, i) => {
    const fn = tool?.function
    if (tool?.type !== 'function' || typeof fn?.name !== 'string') {
      throw invalidRequest(`tools[${i}]`, `expected {type: "function", function: {name, description?, parameters?}}, got type ${describe(tool?.type)}`)
    }
    const converted: AnthropicTool = { name: fn.name, input_schema: fn.parameters ?? { type: 'object', properties: {} } }
    if (typeof fn.description === 'string') converted.description = fn.description
    return converted
  })
}

function toolChoice (choice: any, parallel: unknown): AnthropicToolChoice | undefined {
  const noParallel = parallel === false ? { disable_parallel_tool_use: true } : {}
  if (choice == null) return parallel === false ? { type: 'auto', ...noParallel } : undefined
  if (choice === 'auto') return { type: 'auto', ...noParallel }
  if (choice === 'required') return { type: 'any', ...noParallel }
  if (choice === 'none') return { type: 'none' }
  if (choice?.type === 'function' && typeof choice.function?.name === 'string') return { type: 'tool', name: choice.function.name, ...noParallel }
  throw invalidRequest('tool_choice', `got ${describe(choice)}; expected "auto", "none", "required" or {type: "function", function: {name}}`)
}

export function finishReason (stopReason: string | null | undefined): OpenAIFinishReason {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length'
    case 'tool_use':
      return 'tool_calls'
    case 'refusal':
      return 'content_filter'
    default:
      return 'stop' // end_turn, stop_sequence, pause_turn
  }
}

/** Anthropic counts cached prompt tokens apart; OpenAI's prompt_tokens includes them. */
export function usageFrom (usage: AnthropicUsage): OpenAIUsage {
  const cached = usage.cache_read_input_tokens ?? 0
  const prompt = (usage.input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0) + cached
  const completion = usage.output_tokens ?? 0
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } }
}

/** A whole Anthropic message as a `chat.completion`. Thinking blocks are left out. */
export function fromAnthropicMessage (message: AnthropicMessage, created = Math.floor(Date.now() / 1000)): ChatCompletion {
  if (message == null || !Array.isArray(message.content)) {
    throw UpstreamError.of(502, 'upstream_error', 'the Anthropic upstream answered without a message content array')
  }
  let text = ''
  const toolCalls: OpenAIToolCall[] = []
  for (const block of message.content) {
    if (block.type === 'text') text += block.text ?? ''
    else if (block.type === 'tool_use') {
      toolCalls.push({ id: block.id ?? '', type: 'function', function: { name: block.name ?? '', arguments: JSON.stringify(block.input ?? {}) } })
    }
  }
  const reply: ChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    content: text === '' && toolCalls.length > 0 ? null : text,
    refusal: null
  }
  if (toolCalls.length > 0) reply.tool_calls = toolCalls
  return {
    id: message.id,
    object: 'chat.completion',
    created,
    model: message.model,
    choices: [{ index: 0, message: reply, logprobs: null, finish_reason: finishReason(message.stop_reason) }],
    usage: usageFrom(message.usage ?? {})
  }
}

/** An Anthropic error (`{type: "error", error: {type, message}}`) in OpenAI's shape. */
export function fromAnthropicError (status: number, text: string, redact: (s: string) => string): UpstreamError {
  let json: any
  try {
    json = JSON.parse(text)
  } catch {}
  const error = json?.error
  if (typeof error?.message === 'string') {
    return UpstreamError.of(status, typeof error.type === 'string' ? error.type : typeFromStatus(status), redact(error.message))
  }
  const detail = text.trim().slice(0, 500)
  return UpstreamError.of(status, typeFromStatus(status), redact(`the Anthropic upstream answered ${status}${detail === '' ? '' : `: ${detail}`}`))
}

/** The HTTP status Anthropic would have answered for an error type sent mid-stream. */
export function statusOfAnthropicError (type: string | undefined): number {
  switch (type) {
    case 'invalid_request_error': return 400
    case 'authentication_error': return 401
    case 'permission_error': return 403
    case 'not_found_error': return 404
    case 'request_too_large': return 413
    case 'rate_limit_error': return 429
    case 'overloaded_error': return 529
    default: return 502
  }
}

function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}
