/**
 * The OpenAI-compatible endpoint on the node's local HTTP server:
 * GET /v1/models and POST /v1/{chat/completions, completions, embeddings},
 * answered by whichever node hosts the requested model.
 */
import { UpstreamError } from '../models/errors.js'
import { formatSseData, SseParser } from '../models/sse.js'
import { AnthropicEventWriter, anthropicError, anthropicEvent, anthropicMessageFromChat, chatRequestFromAnthropic } from '../models/anthropic-inbound.js'
import { MODEL_ROUTES } from '../models/upstream.js'
import { readJsonBody } from '../http/body.js'
import { drained, sendJson, type LocalHttpServer } from '../http/local-server.js'
import { MAX_REQUEST_BODY_BYTES } from './constants.js'
import { asUpstreamError, badRequest } from './errors.js'
import { mark } from '../wire/trace.js'
import type { ModelProxy, ProxiedResponse } from './model-proxy.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'
import type { ServerResponse } from 'node:http'

/** The bearer token (proxyToken) is checked by the local server for every route. */
export interface ModelRoutesInit {
  /** The node's logger (../node/logging.ts `nodeLogger`), so every line says which node it is. */
  logger: ComponentLogger
  maxBodyBytes?: number
}

/** Why a request stopped being answered: its client went away. */
class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError'
}

export function registerModelRoutes (http: Pick<LocalHttpServer, 'route'>, proxy: ModelProxy, init: ModelRoutesInit): void {
  const maxBodyBytes = init.maxBodyBytes ?? MAX_REQUEST_BODY_BYTES
  const log = init.logger.forComponent('clawmatrix:model-proxy:http')

  http.route('GET', '/v1/models', async (_req, res) => {
    // OpenAI's list format; `clawmatrix` says where each model runs.
    sendJson(res, 200, {
      object: 'list',
      data: proxy.models().map(model => ({
        id: model.id,
        object: 'model',
        created: 0,
        owned_by: model.provider,
        clawmatrix: { nodes: model.nodes, ...(model.description == null ? {} : { description: model.description }) }
      }))
    })
  })

  for (const route of MODEL_ROUTES) {
    http.route('POST', `/v1/${route}`, async (req, res) => {
      const client = new AbortController()
      res.once('close', () => {
        if (!res.writableFinished) client.abort(new ClientGoneError('the client closed the connection'))
      })
      let body: Record<string, unknown>
      try {
        body = await readJsonBody(req, maxBodyBytes)
        mark('caller: body parsed')
      } catch (err) {
        sendError(res, asUpstreamError(err))
        return
      }
      if (typeof body.model !== 'string' || body.model === '') {
        sendError(res, badRequest('model: expected the model id as a string, e.g. "clawmatrix/llama3"', 'model'))
        return
      }
      try {
        const answer = await proxy.request({ model: body.model, route, body }, { signal: client.signal })
        await relay(answer, res, client.signal, log)
      } catch (err) {
        if (client.signal.aborted) return
        sendError(res, asUpstreamError(err))
      }
    })
  }

  // Anthropic Messages clients: translated to a chat request and back, whatever the upstream speaks.
  http.route('POST', '/v1/messages', async (req, res) => {
    const client = new AbortController()
    res.once('close', () => {
      if (!res.writableFinished) client.abort(new ClientGoneError('the client closed the connection'))
    })
    let chat: Record<string, unknown>
    try {
      chat = chatRequestFromAnthropic(await readJsonBody(req, maxBodyBytes))
    } catch (err) {
      sendAnthropicError(res, asUpstreamError(err))
      return
    }
    const model = chat.model as string
    try {
      const answer = await proxy.request({ model, route: 'chat/completions', body: chat }, { signal: client.signal })
      await relayAsAnthropic(answer, res, model, client.signal, log)
    } catch (err) {
      if (client.signal.aborted) return
      sendAnthropicError(res, asUpstreamError(err))
    }
  })
}

/**
 * Writes an OpenAI answer as a Messages answer: a stream event by event
 * (message_start ... message_stop; an `error` event when it breaks off), a
 * whole answer as one message.
 */
async function relayAsAnthropic (answer: ProxiedResponse, res: ServerResponse, model: string, signal: AbortSignal, log: Logger): Promise<void> {
  const headers = { 'x-clawmatrix-node': answer.host.nodeId, 'x-clawmatrix-model': answer.model }
  // The name the client asked for, unless a fallback answered.
  if (model !== answer.model && model !== `clawmatrix/${answer.model}`) model = answer.model
  if (!answer.contentType.startsWith('text/event-stream')) {
    const parts: Uint8Array[] = []
    for await (const part of answer.body) parts.push(part)
    res.setHeader('x-clawmatrix-node', headers['x-clawmatrix-node'])
    res.setHeader('x-clawmatrix-model', headers['x-clawmatrix-model'])
    sendJson(res, 200, anthropicMessageFromChat(JSON.parse(Buffer.concat(parts).toString('utf8')), model))
    return
  }
  const writer = new AnthropicEventWriter(model)
  const parser = new SseParser()
  try {
    for await (const chunk of answer.body) {
      let text = ''
      for (const event of parser.push(chunk)) {
        text += event.data === '[DONE]' ? writer.end() : writer.chunk(JSON.parse(event.data))
      }
      if (text === '') continue
      if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', ...headers })
      if (!res.write(text) && !await drained(res)) return
    }
    res.end()
  } catch (err) {
    if (signal.aborted) return
    const error = asUpstreamError(err)
    log('the answer from %s broke off: %s', answer.host.nodeId, error.message)
    if (!res.headersSent) sendAnthropicError(res, error)
    else res.end(anthropicEvent('error', anthropicError(error.status, error.body)))
  }
}

function sendAnthropicError (res: ServerResponse, error: UpstreamError): void {
  if (res.headersSent || res.destroyed) return
  if (error.status === 413) res.setHeader('connection', 'close')
  if (error.retryAfterSeconds != null) res.setHeader('retry-after', String(error.retryAfterSeconds))
  sendJson(res, error.status, anthropicError(error.status, error.body))
}

/**
 * Writes the answer as it arrives, waiting for the client to take each
 * chunk (back-pressure to the host and its upstream). The status line goes
 * out with the first chunk, so an answer that fails before it still gets a
 * proper error status. A failure after it cannot change the status: a
 * stream then ends with an error event and no `[DONE]` (as OpenAI does),
 * a JSON answer with a cut connection. Never a short answer that looks whole.
 */
async function relay (answer: ProxiedResponse, res: ServerResponse, signal: AbortSignal, log: Logger): Promise<void> {
  const streaming = answer.contentType.startsWith('text/event-stream')
  const head = (): void => {
    res.writeHead(answer.status, {
      'content-type': streaming ? 'text/event-stream; charset=utf-8' : 'application/json',
      'cache-control': 'no-cache',
      // reverse proxies that buffer would hold the stream back
      'x-accel-buffering': 'no',
      'x-clawmatrix-node': answer.host.nodeId,
      'x-clawmatrix-model': answer.model
    })
  }
  try {
    for await (const chunk of answer.body) {
      if (!res.headersSent) {
        head()
        if (!res.write(chunk) && !await drained(res)) return
        mark('caller: first byte written')
        continue
      }
      if (!res.write(chunk) && !await drained(res)) return
    }
    if (!res.headersSent) head()
    res.end()
  } catch (err) {
    if (signal.aborted) return
    const error = asUpstreamError(err)
    log('the answer from %s broke off: %s', answer.host.nodeId, error.message)
    if (!res.headersSent) {
      sendError(res, error)
    } else if (streaming) {
      res.end(formatSseData(error.body))
    } else {
      res.destroy(error)
    }
  }
}

function sendError (res: ServerResponse, error: UpstreamError): void {
  if (res.headersSent || res.destroyed) return
  // A refused body may be only partly read: close rather than reuse the connection.
  if (error.status === 413) res.setHeader('connection', 'close')
  if (error.retryAfterSeconds != null) res.setHeader('retry-after', String(error.retryAfterSeconds))
  sendJson(res, error.status, error.body)
}
