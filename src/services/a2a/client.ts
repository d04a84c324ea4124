/**
 * A small A2A 1.0 JSON-RPC client: what a node needs to offer an external A2A
 * agent to the cluster (./agent-runner.ts). Streams when the agent streams,
 * and falls back to a blocking SendMessage when it does not.
 */
import { parseSse } from '../models/sse.js'
import { JSON_RPC_ERRORS, type JsonRpcResponse } from './json-rpc.js'
import { checkTask, type A2AMessage, type A2AStreamEvent, type A2ATask } from './wire.js'
import { A2AAgentError } from './errors.js'

export interface A2AClientInit {
  /** The agent's JSON-RPC endpoint. */
  url: string
  /** Sent as `Authorization: Bearer <token>`; never logged or shown. */
  token?: string
  /** Names the agent in errors, e.g. `A2A agent "hermes"`. */
  label: string
}

export class A2AClient {
  private nextId = 1

  constructor (private readonly init: A2AClientInit) {}

  /**
   * Sends a message and yields the agent's events until the stream ends.
   * An agent that does not stream answers once, as a `task` or `message`.
   */
  async * sendStreaming (message: A2AMessage, signal: AbortSignal): AsyncGenerator<A2AStreamEvent> {
    const id = this.nextId++
    const response = await this.post({ jsonrpc: '2.0', id, method: 'SendStreamingMessage', params: { message } }, 'text/event-stream', signal)
    if (!(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      const answer = await this.answerOf(response, 'SendStreamingMessage')
      if ('error' in answer && (answer.error.code === JSON_RPC_ERRORS.methodNotFound || answer.error.code === JSON_RPC_ERRORS.unsupportedOperation)) {
        yield await this.sendMessage(message, signal)
        return
      }
      yield this.resultOf(answer, 'SendStreamingMessage') as A2AStreamEvent
      return
    }
    for await (const event of parseSse(response.body! as AsyncIterable<Uint8Array>)) {
      let parsed: JsonRpcResponse
      try {
        parsed = JSON.parse(event.data)
      } catch {
        throw new A2AAgentError(`${this.init.label} sent an event that is not JSON`)
      }
      yield this.resultOf(parsed, 'SendStreamingMessage') as A2AStreamEvent
    }
  }

  /** A blocking SendMessage: the agent answers with a task or a message. */
  async sendMessage (message: A2AMessage, signal: AbortSignal): Promise<A2AStreamEvent> {
    const response = await this.post({ jsonrpc: '2.0', id: this.nextId++, method: 'SendMessage', params: { message } }, 'application/json', signal)
    return this.resultOf(await this.answerOf(response, 'SendMessage'), 'SendMessage') as A2AStreamEvent
  }

  async cancelTask (id: string, signal: AbortSignal): Promise<A2ATask> {
    const response = await this.post({ jsonrpc: '2.0', id: this.nextId++, method: 'CancelTask', params: { id } }, 'application/json', signal)
    return checkTask(this.resultOf(await this.answerOf(response, 'CancelTask'), 'CancelTask'))
  }

  private async post (body: unknown, accept: string, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept, 'a2a-version': '1.0' }
    if (this.init.token != null) headers.authorization = `Bearer ${this.init.token}`
    let response: Response
    try {
      response = await fetch(this.init.url, { method: 'POST', headers, body: JSON.stringify(body), signal })
    } catch (err: any) {
      if (signal.aborted) throw signal.reason
      throw new A2AAgentError(`${this.init.label} is unreachable at ${this.where()}: ${err.cause?.code ?? err.cause?.message ?? err.message}`)
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel()
      throw new A2AAgentError(`${this.init.label} refused this node's token (HTTP ${response.status} from ${this.where()})`)
    }
    return response
  }

  private async answerOf (response: Response, method: string): Promise<JsonRpcResponse> {
    const text = await response.text()
    try {
      return JSON.parse(text)
    } catch {
      throw new A2AAgentError(`${this.init.label} answered ${method} with HTTP ${response.status} and no JSON-RPC body (${this.where()})`)
    }
  }

  private resultOf (answer: JsonRpcResponse, method: string): unknown {
    if ('error' in answer && answer.error != null) {
      throw new A2AAgentError(`${this.init.label} refused ${method}: ${String(answer.error.message)} (JSON-RPC ${answer.error.code})`, answer.error.code)
    }
    if (!('result' in answer) || answer.result == null) throw new A2AAgentError(`${this.init.label} answered ${method} without a result`)
    return answer.result
  }

  /** The endpoint without credentials or query, for errors. */
  private where (): string {
    const url = new URL(this.init.url)
    return `${url.protocol}//${url.host}${url.pathname}`
  }
}
