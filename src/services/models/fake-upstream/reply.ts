/**
 * What a fake upstream answers, and the deterministic "built-in model" it
 * answers by default: the words of the last user message, reversed, one
 * word per stream chunk.
 */
import type { RecordedRequest } from './fake-server.js'

export interface FakeToolCall {
  /** Defaults to call_<n> (OpenAI) or toolu_<n> (Anthropic). */
  id?: string
  name: string
  arguments: Record<string, unknown>
}

export interface FakeReply {
  /** The answer's text chunks; default: the built-in model's answer to the request. */
  chunks?: string[]
  /** Tool calls made after the text (finish reason tool_calls / tool_use). */
  toolCalls?: FakeToolCall[]
  /** Waits this long before each chunk. */
  delayMs?: number
  /**
   * Awaited before chunk `index` is written (content chunks first, then one
   * per tool-call piece): a test holds the stream here to see what arrived.
   */
  beforeChunk?: (index: number) => Promise<void> | void
  /** Answer with this HTTP status and the dialect's error body instead. */
  fail?: { status: number, message: string, type?: string }
  /** Destroy the socket after this many chunks, as a crashed upstream would. */
  dieAfterChunks?: number
  /** End the HTTP response cleanly after this many chunks, without finishing the answer. */
  endAfterChunks?: number
  /** Send the dialect's mid-stream error event after this many chunks, then end. */
  errorEventAfterChunks?: number
  /** OpenAI: end a finished stream without `data: [DONE]` (some servers do). */
  omitDone?: boolean
  /** Stop reason as if max_tokens was reached (finish_reason "length"). */
  truncated?: boolean
}

export type FakeReplySource = FakeReply | ((request: RecordedRequest) => FakeReply)

export function replyFor (source: FakeReplySource, request: RecordedRequest): FakeReply {
  return typeof source === 'function' ? source(request) : source
}

/** The built-in model's answer: the last user message's words in reverse order, one chunk each. */
export function builtinAnswer (lastUserText: string): string[] {
  const words = lastUserText.split(/\s+/).filter(w => w !== '')
  if (words.length === 0) return ['Say', ' something', ' and', ' I', ' will', ' say', ' it', ' backwards.']
  return words.reverse().map((word, i) => i === 0 ? word : ` ${word}`)
}

/** The text of the last user message in an OpenAI or Anthropic message list. */
export function lastUserText (messages: unknown): string {
  if (!Array.isArray(messages)) return ''
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]
    if (message?.role !== 'user') continue
    const text = textOf(message.content)
    if (text !== '') return text
  }
  return ''
}

function textOf (content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content.filter(p => p?.type === 'text' && typeof p.text === 'string').map(p => p.text).join(' ')
}

/** A deterministic stand-in for a tokenizer: words and punctuation runs. */
export function countTokens (text: string): number {
  return text.match(/\w+|[^\s\w]/g)?.length ?? 0
}

/** Splits a tool call's JSON arguments into pieces, as a real model streams them. */
export function argumentPieces (json: string): string[] {
  const size = Math.max(1, Math.ceil(json.length / 3))
  const pieces: string[] = []
  for (let i = 0; i < json.length; i += size) pieces.push(json.slice(i, i + size))
  return pieces.length > 0 ? pieces : ['']
}
