/**
 * Waits until `condition` returns a truthy value (or resolves to one), checking
 * every `intervalMs`; fails with `what` and the last error after `timeoutMs`.
 * A condition, not a fixed sleep: it returns as soon as the state is reached.
 */
export async function waitFor<T> (what: string, condition: () => T | Promise<T>, { timeoutMs = 20_000, intervalMs = 25 } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (true) {
    try {
      const value = await condition()
      if (value) return value as NonNullable<T>
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError == null ? '' : ` (last error: ${String(lastError)})`}`)
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}
