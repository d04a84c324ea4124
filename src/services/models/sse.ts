/**
 * Server-sent events (the text/event-stream format of the WHATWG HTML
 * standard): an incremental parser and an encoder.
 */
import { MAX_SSE_EVENT_BYTES } from './constants.js'
import { SseFormatError } from './errors.js'

export interface SseEvent {
  /** The `event:` field; absent means the default "message". */
  event?: string
  /** The `data:` lines joined with "\n". */
  data: string
  id?: string
}

/**
 * Parses an event stream chunk by chunk. Chunks may split lines, CRLF pairs
 * and UTF-8 sequences anywhere; an event only comes out once its closing
 * blank line has arrived.
 */
export class SseParser {
  private readonly decoder = new TextDecoder()
  private readonly maxEventBytes: number
  private line = ''
  private afterCR = false
  private data: string[] = []
  private dataLength = 0
  private event?: string
  private id?: string

  constructor (init: { maxEventBytes?: number } = {}) {
    this.maxEventBytes = init.maxEventBytes ?? MAX_SSE_EVENT_BYTES
  }

  /** Feeds bytes (or text) and returns the events they completed. */
  push (chunk: Uint8Array | string): SseEvent[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true })
    const events: SseEvent[] = []
    let start = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      if (c === 10 && this.afterCR && i === start && this.line === '') {
        // the LF of a CRLF pair split across two chunks
        this.afterCR = false
        start = i + 1
        continue
      }
      this.afterCR = c === 13
      const line = this.line + text.slice(start, i)
      this.line = ''
      this.processLine(line, events)
      if (c === 13 && text.charCodeAt(i + 1) === 10) {
        i++
        this.afterCR = false
      }
      start = i + 1
    }
    if (start < text.length) {
      this.afterCR = false
      this.line += text.slice(start)
      if (this.line.length + this.dataLength > this.maxEventBytes) this.tooLarge()
    }
    return events
  }

  /**
   * Ends the stream. A last event whose lines were complete but whose blank
   * line never came is dispatched (lenient with servers that end on
   * `data: [DONE]\n`); a half-received line is dropped.
   */
  end (): SseEvent[] {
    const events: SseEvent[] = []
    this.line = ''
    this.dispatch(events)
    return events
  }

  private processLine (line: string, events: SseEvent[]): void {
    if (line === '') {
      this.dispatch(events)
      return
    }
    if (line.startsWith(':')) return // a comment, often a keep-alive
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    switch (field) {
      case 'data':
        this.data.push(value)
        this.dataLength += value.length + 1
        if (this.dataLength > this.maxEventBytes) this.tooLarge()
        break
      case 'event':
        this.event = value
        break
      case 'id':
        if (!value.includes('\0')) this.id = value
        break
      default:
        break // "retry" and unknown fields mean nothing to a proxy
    }
  }

  private dispatch (events: SseEvent[]): void {
    if (this.data.length > 0) {
      const event: SseEvent = { data: this.data.join('\n') }
      if (this.event != null && this.event !== '') event.event = this.event
      if (this.id != null) event.id = this.id
      events.push(event)
    }
    this.data = []
    this.dataLength = 0
    this.event = undefined
  }

  private tooLarge (): never {
    throw new SseFormatError(`an event stream event exceeded ${this.maxEventBytes} bytes`)
  }
}

/** Parses a byte stream into events as they complete. */
export async function * parseSse (source: AsyncIterable<Uint8Array | string>, init?: { maxEventBytes?: number }): AsyncGenerator<SseEvent> {
  const parser = new SseParser(init)
  for await (const chunk of source) {
    yield * parser.push(chunk)
  }
  yield * parser.end()
}

/** The wire text of one event. */
export function formatSseEvent (event: SseEvent): string {
  let text = ''
  if (event.event != null) text += `event: ${event.event}\n`
  if (event.id != null) text += `id: ${event.id}\n`
  for (const line of event.data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`
  return text + '\n'
}

/** One `data:` event carrying JSON, the shape of every OpenAI stream chunk. */
export function formatSseData (value: unknown): string {
  return formatSseEvent({ data: JSON.stringify(value) })
}

/** The OpenAI end-of-stream marker. */
export const SSE_DONE = 'data: [DONE]\n\n'

const encoder = new TextEncoder()

export function utf8 (text: string): Uint8Array {
  return encoder.encode(text)
}
