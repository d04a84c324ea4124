import type { IncomingMessage } from 'node:http'
import { HttpRequestError } from '../errors.js'

/** Reads a JSON object body of at most `maxBytes`; throws HttpRequestError 413 or 400. */
export async function readJsonBody (req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume()
    throw new HttpRequestError(413, `the request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > maxBytes) {
      req.resume()
      throw new HttpRequestError(413, `the request body exceeds the limit of ${maxBytes} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  let body: unknown
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (err: any) {
    throw new HttpRequestError(400, `the request body is not valid JSON: ${err.message}`)
  }
  if (body == null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpRequestError(400, 'the request body must be a JSON object')
  }
  return body as Record<string, unknown>
}
