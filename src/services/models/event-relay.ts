/**
 * Relays an upstream event stream: parses it, lets a dialect turn each event
 * into OpenAI SSE text, and yields that text once per upstream read, so the
 * answer flows at the upstream's pace and no faster than the caller pulls.
 */
import { UpstreamError } from './errors.js'
import { SseParser, utf8, type SseEvent } from './sse.js'
import type { UpstreamHttpResponse } from './upstream-http.js'

export interface EventRelay {
  /** The OpenAI SSE text for one upstream event (often ''). Throws to fail the stream. */
  event(event: SseEvent): string
  /** True once the answer is complete: nothing after it is read. */
  readonly complete: boolean
  /**
   * The closing text once the upstream body ended or the answer completed;
   * throws an UpstreamError when the answer was cut short.
   */
  end(): string
}

export async function * relayEventStream (response: UpstreamHttpResponse, relay: EventRelay, upstreamName: string): AsyncGenerator<Uint8Array> {
  const parser = new SseParser()
  let failure: unknown
  const run = (events: SseEvent[]): string => {
    let text = ''
    for (const event of events) {
      if (relay.complete || failure != null) break
      try {
        text += relay.event(event)
      } catch (err) {
        failure = err // what came before the failing event still goes out first
      }
    }
    return text
  }
  const parse = (push: () => SseEvent[]): SseEvent[] => {
    try {
      return push()
    } catch (err: any) {
      throw UpstreamError.of(502, 'upstream_error', `the ${upstreamName}'s event stream is malformed: ${err.message}`)
    }
  }

  for await (const bytes of response.chunks()) {
    const text = run(parse(() => parser.push(bytes)))
    if (text !== '') yield utf8(text)
    if (failure != null) throw failure
    if (relay.complete) {
      // What follows the end marker is only the HTTP end: leaving reads it, so the connection stays open for the next request.
      response.answerComplete()
      break
    }
  }
  if (!relay.complete) {
    const text = run(parse(() => parser.end()))
    if (text !== '') yield utf8(text)
    if (failure != null) throw failure
  }
  const closing = relay.end()
  if (closing !== '') yield utf8(closing)
}
