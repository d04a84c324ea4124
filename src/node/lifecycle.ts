import { start, stop, type Startable } from '@libp2p/interface'

/** A part of a node, named for the errors and logs about its start. */
export type NamedPart = readonly [name: string, part: Startable]

/**
 * Starts `parts` one after another (each through libp2p's `start`, so
 * `beforeStart`/`afterStart` run too). When one fails, the ones already
 * started are stopped again, newest first, and its error is thrown: a failed
 * start leaves no port bound and no timer running. Resolves with the parts
 * started, which is all of them.
 */
export async function startInOrder (parts: readonly NamedPart[], onStopError: StopErrorHandler = ignore): Promise<NamedPart[]> {
  const started: NamedPart[] = []
  for (const named of parts) {
    try {
      await start(named[1])
    } catch (err) {
      // The failed part may have half-started (a listener bound, a handler registered): stop it too.
      await stopInReverse([...started, named], onStopError)
      throw err
    }
    started.push(named)
  }
  return started
}

/** Stops `parts` newest first; one that fails to stop does not keep the others running. */
export async function stopInReverse (parts: readonly NamedPart[], onStopError: StopErrorHandler = ignore): Promise<void> {
  for (const [name, part] of [...parts].reverse()) {
    try {
      await stop(part)
    } catch (err) {
      onStopError(name, err)
    }
  }
}

export type StopErrorHandler = (name: string, err: unknown) => void

const ignore: StopErrorHandler = () => {}
