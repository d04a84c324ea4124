/**
 * The demo's model: a real OpenAI-compatible HTTP server on loopback
 * (`GET /v1/models`, `POST /v1/chat/completions`, streamed or not) whose
 * answer is the last user message's words in reverse order, streamed one
 * word per chunk with a short pause, so a newcomer can watch a stream arrive
 * over the mesh. Only what `clawmatrix demo` needs; the tests' upstreams,
 * with faults on request, are in test/fixtures/fake-upstream/.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { AddressInfo } from 'node:net'

export const DEMO_MODEL_NAME = 'builtin-reverse'

export interface DemoModelInit {
  /**
   * Pause before each word of a streamed answer: slow enough to see words
   * arrive one by one in a terminal.
   *
   * @default 60
   */
  delayMs?: number
}

/** Requests above this are refused: the demo model reads a chat, nothing more. */
const MAX_REQUEST_BYTES = 1024 * 1024

export interface DemoModel {
  /** The base URL an OpenAI client takes: http://127.0.0.1:<port>/v1 */
  url: string
  stop(): Promise<void>
}

/** Starts the demo model on a free loopback port. */
export async function startDemoModel (init: DemoModelInit = {}): Promise<DemoModel> {
  const delayMs = init.delayMs ?? 60
  const server = createServer((req, res) => {
    answer(req, res, delayMs).catch(() => { res.destroy() })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve() })
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/v1`,
    async stop () {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}

/** The answer: the words of `text` in reverse order, each but the first with its leading space. */
export function reversedWords (text: string): string[] {
  const words = text.split(/\s+/).filter(w => w !== '')
  if (words.length === 0) return ['Say', ' something', ' and', ' I', ' will', ' say', ' it', ' backwards.']
  return words.reverse().map((word, i) => i === 0 ? word : ` ${word}`)
}

async function answer (req: IncomingMessage, res: ServerResponse, delayMs: number): Promise<void> {
  const route = `${req.method} ${(req.url ?? '').split('?')[0]!.replace(/\/+$/, '')}`
  if (route === 'GET /v1/models') {
    sendJson(res, 200, { object: 'list', data: [{ id: DEMO_MODEL_NAME, object: 'model', created: 1_700_000_000, owned_by: 'clawmatrix-demo' }] })
    return
  }
  if (route !== 'POST /v1/chat/completions') {
    sendError(res, 404, `Invalid URL (${route})`, null)
    return
  }
  const body = await readJson(req)
  if (body?.model !== DEMO_MODEL_NAME) {
    sendError(res, 404, `The model \`${String(body?.model)}\` does not exist; this is the demo model "${DEMO_MODEL_NAME}".`, 'model_not_found')
    return
  }
  const words = reversedWords(lastUserText(body.messages))
  const id = `chatcmpl-demo-${Date.now()}`
  const created = Math.floor(Date.now() / 1000)
  if (body.stream !== true) {
    sendJson(res, 200, {
      id, object: 'chat.completion', created, model: DEMO_MODEL_NAME,
      choices: [{ index: 0, message: { role: 'assistant', content: words.join('') }, finish_reason: 'stop' }]
    })
    return
  }
  const chunk = (delta: Record<string, unknown>, finishReason: string | null = null): string =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: DEMO_MODEL_NAME, choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  res.write(chunk({ role: 'assistant', content: '' }))
  for (const word of words) {
    await sleep(delayMs)
    if (res.destroyed) return
    res.write(chunk({ content: word }))
  }
  res.end(chunk({}, 'stop') + 'data: [DONE]\n\n')
}

async function readJson (req: IncomingMessage): Promise<any> {
  let size = 0
  const parts: Buffer[] = []
  for await (const part of req) {
    size += (part as Buffer).length
    if (size > MAX_REQUEST_BYTES) return undefined
    parts.push(part as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'))
  } catch {
    return undefined
  }
}

function lastUserText (messages: unknown): string {
  if (!Array.isArray(messages)) return ''
  const last = messages.findLast(m => m?.role === 'user')
  if (typeof last?.content === 'string') return last.content
  return Array.isArray(last?.content) ? last.content.filter((p: any) => p?.type === 'text').map((p: any) => String(p.text)).join(' ') : ''
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function sendError (res: ServerResponse, status: number, message: string, code: string | null): void {
  sendJson(res, status, { error: { message, type: 'invalid_request_error', param: null, code } })
}
