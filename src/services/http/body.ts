import type { IncomingMessage } from 'node:http'
import { HttpRequestError } from '../errors.js'

/** Reads a JSON object body of at most `maxBytes`; throws HttpRequestError 413 or 400. */
export async function readJsonBody (req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume()
    throw new HttpRequestError(413, `the request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`)
  }
  // Events rather than `for await`: the async iterator cost a measurable share of a proxied request's way in.
  const chunks = await new Promise<Buffer[]>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength
      if (size <= maxBytes) {
        chunks.push(chunk)
        return
      }
      stop()
      req.resume()
      reject(new HttpRequestError(413, `the request body exceeds the limit of ${maxBytes} bytes`))
    }
    const onEnd = (): void => { stop(); resolve(chunks) }
    const onClose = (): void => { stop(); reject(new HttpRequestError(400, 'the client closed the connection before the end of its request body')) }
    const onError = (err: Error): void => { stop(); reject(new HttpRequestError(400, `the request body could not be read: ${err.message}`)) }
    const stop = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('close', onClose)
      req.off('error', onError)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('close', onClose)
    req.on('error', onError)
  })
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
