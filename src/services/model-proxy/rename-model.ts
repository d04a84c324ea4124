/**
 * A fallback's answer says which model served it: its `model` field becomes
 * the cluster model id. Only answers from a fallback pass through here, so
 * the common path never parses the body.
 */
import { utf8 } from '../models/sse.js'

export async function * renameModel (body: AsyncIterable<Uint8Array>, contentType: string, model: string): AsyncGenerator<Uint8Array> {
  const streaming = contentType.startsWith('text/event-stream')
  if (!streaming) {
    const parts: Uint8Array[] = []
    for await (const part of body) parts.push(part)
    yield utf8(renamed(Buffer.concat(parts).toString('utf8'), model))
    return
  }
  // Streamed pieces hold whole events (ModelResponse.body's contract).
  for await (const part of body) {
    const text = Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString('utf8')
    yield utf8(text.split(/(?<=\n\n)/).map(event => {
      const match = /^data: (\{.*\})\n\n$/s.exec(event)
      return match == null ? event : `data: ${renamed(match[1]!, model)}\n\n`
    }).join(''))
  }
}

function renamed (json: string, model: string): string {
  let value: any
  try {
    value = JSON.parse(json)
  } catch {
    return json
  }
  if (value == null || typeof value !== 'object' || typeof value.model !== 'string') return json
  return JSON.stringify({ ...value, model })
}
