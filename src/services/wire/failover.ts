import { NoCandidateAcceptedError, PathLostError, type CandidateFailure } from './errors.js'
import type { PeerId } from '@libp2p/interface'

/**
 * Tries `open` on each candidate in order and returns the first that
 * accepted; `open` is told whether the candidate is the last one. `open` must resolve only once the remote accepted the work:
 * a refusal or a failure up to that point moves on to the next candidate,
 * anything after it is the caller's to handle, so accepted work is never
 * sent twice. A candidate whose relayed path died under the request
 * (PathLostError) is tried once more at once: the new dial takes another
 * path (another relay) if it has one. With a single candidate its own error
 * is thrown unchanged.
 */
export async function firstAccepting<T> (candidates: PeerId[], open: (peer: PeerId, last: boolean) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const failures: CandidateFailure[] = []
  for (const [index, peer] of candidates.entries()) {
    let error: any
    for (let attempt = 0; attempt < 2; attempt++) {
      signal?.throwIfAborted()
      try {
        return await open(peer, index === candidates.length - 1)
      } catch (err: any) {
        if (signal?.aborted === true) throw signal.reason
        error = err
        if (!(err instanceof PathLostError)) break
      }
    }
    if (candidates.length === 1) throw error
    failures.push({ peer: peer.toString(), error })
  }
  throw new NoCandidateAcceptedError(failures)
}

/** A single peer or an ordered candidate list, as every caller method takes. */
export type Target = PeerId | PeerId[]

export function candidatesOf (target: Target): PeerId[] {
  return Array.isArray(target) ? target : [target]
}
