/**
 * Errors of the clawmatrix stream protocols. Each has a stable `code`: the
 * codes that cross the wire are listed in docs/protocol.md.
 */

export class ClawmatrixProtocolError extends Error {
  readonly code: string

  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ClawmatrixProtocolError'
    this.code = code
  }
}

/** A frame that is not a JSON object with a string `type`, or a request that fails its schema. */
export class MalformedFrameError extends ClawmatrixProtocolError {
  constructor (message: string, code = 'bad-frame') {
    super(code, message)
    this.name = 'MalformedFrameError'
  }
}

/** A frame above the size limit, announced by its length prefix. */
export class FrameTooLargeError extends ClawmatrixProtocolError {
  constructor (message: string) {
    super('frame-too-large', message)
    this.name = 'FrameTooLargeError'
  }
}

/** The stream ended (closed, reset, or its connection died) before its final frame. */
export class StreamCutError extends ClawmatrixProtocolError {
  constructor (message: string, options?: ErrorOptions) {
    super('stream-cut', message, options)
    this.name = 'StreamCutError'
  }
}

/**
 * The relayed connection a request travelled on closed under it: the relay
 * (or its link to the remote) went away. Before the remote accepted the
 * work, the request is tried once more over another path; after, the work
 * may have run, so it is not sent again.
 */
export class PathLostError extends ClawmatrixProtocolError {
  /**
   * @param peer - the remote, by name
   * @param relay - the relay's peer id
   * @param relayNamed - the relay's name and state in words, for the message
   */
  constructor (peer: string, readonly relay: string, relayNamed: { name: string, state?: string }, readonly accepted: boolean, options?: ErrorOptions) {
    super('path-lost', `the connection to ${peer} through relay ${relayNamed.name} closed ${accepted ? 'after the work was accepted' : 'before it answered'}` +
      (relayNamed.state == null ? '' : `; ${relayNamed.state}`), options)
    this.name = 'PathLostError'
  }
}

/**
 * The connection to a peer answered no ping in time while a request waited
 * on it: the peer froze, or the network between stopped carrying packets
 * without closing anything. Nothing on that connection is trusted until a
 * ping is answered again.
 */
export class SilentConnectionError extends ClawmatrixProtocolError {
  /**
   * @param peer - the remote, by name
   * @param silentMs - how long its ping has been unanswered
   * @param path - how the connection runs (`direct`, `through relay r1`)
   */
  constructor (peer: string, readonly silentMs: number, path: string) {
    super('silent', `${peer} is silent: its connection (${path}) has answered no ping for ${(silentMs / 1000).toFixed(1)} s; it froze, or the network to it drops packets`)
    this.name = 'SilentConnectionError'
  }
}

/** No frame, not even a keep-alive, arrived within the idle timeout. */
export class IdleTimeoutError extends ClawmatrixProtocolError {
  constructor (message: string) {
    super('idle-timeout', message)
    this.name = 'IdleTimeoutError'
  }
}

/** The remote answered with an `error` frame. */
export class RemoteError extends ClawmatrixProtocolError {
  constructor (code: string, message: string) {
    super(code, message)
    this.name = 'RemoteError'
  }
}

/** The remote refused the request before starting it (`rejected` frame). */
export class RefusedError extends ClawmatrixProtocolError {
  constructor (code: string, message: string) {
    super(code, message)
    this.name = 'RefusedError'
  }
}

/** The caller's deadline passed before the final frame. */
export class DeadlineError extends ClawmatrixProtocolError {
  constructor (message: string) {
    super('timeout', message)
    this.name = 'DeadlineError'
  }
}

export interface CandidateFailure {
  peer: string
  error: Error
}

/** Every candidate refused or could not be reached before accepting. */
export class NoCandidateAcceptedError extends ClawmatrixProtocolError {
  readonly failures: CandidateFailure[]

  constructor (failures: CandidateFailure[]) {
    super(
      failures.length === 0 ? 'no-candidates' : 'no-candidate-accepted',
      failures.length === 0
        ? 'no candidate peers to try'
        : `no candidate accepted: ${failures.map(f => `${f.peer}: ${f.error.message}`).join('; ')}`
    )
    this.name = 'NoCandidateAcceptedError'
    this.failures = failures
  }
}
