/**
 * Resolves once `signal` aborts (at once when it has), never rejects: for
 * racing a wait against a deadline. The listener goes with the signal.
 */
export async function whenAborted (signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise<void>(resolve => { signal.addEventListener('abort', () => { resolve() }, { once: true }) })
}
