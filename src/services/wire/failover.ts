import { NoCandidateAcceptedError, type CandidateFailure } from './errors.js'
import type { PeerId } from '@libp2p/interface'

/**
 * Tries `open` on each candidate in order and returns the first that
 * accepted. `open` must resolve only once the remote accepted the work:
 * a refusal or a failure up to that point moves on to the next candidate,
 * anything after it is the caller's to handle, so accepted work is never
 * sent twice. With a single candidate its own error is thrown unchanged.
 */
export async function firstAccepting<T> (candidates: PeerId[], open: (peer: PeerId) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const failures: CandidateFailure[] = []
  for (const peer of candidates) {
    signal?.throwIfAborted()
    try {
      return await open(peer)
    } catch (err: any) {
      if (signal?.aborted === true) throw signal.reason
      if (candidates.length === 1) throw err
      failures.push({ peer: peer.toString(), error: err })
    }
  }
  throw new NoCandidateAcceptedError(failures)
}

/** A single peer or an ordered candidate list, as every caller method takes. */
export type Target = PeerId | PeerId[]

export function candidatesOf (target: Target): PeerId[] {
  return Array.isArray(target) ? target : [target]
}
