/** Resolves after `ms`; for pacing and idle periods, never to wait for a state. */
export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/**
 * Polls `condition` until it returns a truthy value; throws naming `what`
 * after `timeoutMs`.
 */
export async function waitFor<T> (what: string, condition: () => T | Promise<T>, { timeoutMs = 10_000, intervalMs = 5 } = {}): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs
  while (true) {
    const value = await condition()
    if (value != null && value !== false) return value as NonNullable<T>
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/** Runs `fn` and returns how long it took in milliseconds, with its value. */
export async function timed<T> (fn: () => Promise<T>): Promise<{ ms: number, value: T }> {
  const start = performance.now()
  const value = await fn()
  return { ms: performance.now() - start, value }
}
