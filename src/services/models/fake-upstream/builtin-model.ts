/**
 * The demo's built-in model: a real OpenAI-compatible HTTP server on loopback
 * whose answer is the last user message's words in reverse order, streamed one
 * word per chunk with a short pause, so a newcomer can watch a stream arrive.
 */
import { FakeOpenAIServer } from './fake-openai.js'

export const BUILTIN_MODEL_NAME = 'builtin-reverse'
/** Slow enough to see words arrive one by one in a terminal. */
export const BUILTIN_MODEL_DELAY_MS = 60

export async function startBuiltinModel (init: { delayMs?: number, name?: string } = {}): Promise<FakeOpenAIServer> {
  const server = new FakeOpenAIServer({
    models: [init.name ?? BUILTIN_MODEL_NAME],
    reply: { delayMs: init.delayMs ?? BUILTIN_MODEL_DELAY_MS }
  })
  await server.start()
  return server
}
