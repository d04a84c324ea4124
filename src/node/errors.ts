/**
 * How the node layer fails: the swarm, the gate and the node's identity.
 * One class per failure, matched by `name` (as js-libp2p's errors are), so
 * the layers above can tell them apart without importing them; the one
 * mapping of every error to an HTTP status, a tool error and a CLI exit code
 * is in src/services/errors.ts, src/openclaw/errors.ts and src/cli/errors.ts.
 */

/** This node refused the peer's credential. */
export class AdmissionRefusedError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'AdmissionRefusedError'
  }
}

/** The peer refused this node's credential. */
export class AdmissionDeniedError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'AdmissionDeniedError'
  }
}

/** An inbound WebSocket connection refused before its handshake: too many from one address. */
export class InboundRefusedError extends Error {
  constructor (readonly address: string, readonly reason: 'rate' | 'pending', message: string) {
    super(message)
    this.name = 'InboundRefusedError'
  }
}

/** A port could not be bound: `cannot listen on <host>:<port> (<field>): <reason in words>`. */
export class BindError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'BindError'
  }
}

/** The node's peer key exists but cannot be read. */
export class PeerKeyError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'PeerKeyError'
  }
}

/** Says why a port could not be bound, in words. */
export function bindReason (err: NodeJS.ErrnoException): string {
  // libp2p wraps listen errors in its own, keeping the code only in the message.
  const code = err.code ?? err.message.match(/\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/)?.[1]
  switch (code) {
    case 'EADDRINUSE': return 'the port is already in use by another process'
    case 'EACCES': return 'permission denied (ports below 1024 need privileges)'
    case 'EADDRNOTAVAIL': return 'the host address is not on this machine'
    default: return err.message
  }
}
