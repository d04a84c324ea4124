import { connect } from 'node:net'
import { escapeControl } from './escape.js'
import type { Multiaddr } from '@multiformats/multiaddr'

/** How long the TCP probe behind an opaque WebSocket failure may take. */
const PROBE_TIMEOUT_MS = 3_000

/**
 * What a failed dial or lost connection means, in words an operator can act
 * on, instead of a libp2p class name or a cipher error. The gate (./gate.ts)
 * makes a wrong secret surface as a failed Noise decryption: that is named as
 * the refusal it is.
 */
export function describeDialError (err: unknown): string {
  const error = err as { name?: string, message?: string, code?: string, errors?: unknown[], cause?: unknown } | undefined
  if (isWebSocketErrorEvent(err)) return 'the WebSocket connection failed'
  const text = `${error?.name ?? ''} ${error?.code ?? ''} ${error?.message ?? String(err)}`
  if (/EncryptionFailed/.test(text) && /decrypt|chacha20poly1305|validation fail/i.test(text)) return 'the peer refused this node\'s secret'
  if (/ECONNREFUSED/.test(text)) return 'connection refused'
  if (/ENOTFOUND|EAI_AGAIN/.test(text)) return 'host not found'
  if (/EHOSTUNREACH|ENETUNREACH/.test(text)) return 'host unreachable'
  if (/ECONNRESET|EPIPE/.test(text)) return 'connection reset'
  if (/NO_RESERVATION/.test(text)) return 'the relay holds no reservation for it (it is not connected to that relay)'
  if (/TimeoutError|timed? ?out|ETIMEDOUT/i.test(text)) return 'no answer in time'
  if (/UnexpectedPeer|peer id/i.test(text)) return 'a different node answered at that address'
  const inner = error?.errors?.[0] ?? error?.cause
  if (inner != null && inner !== err) return describeDialError(inner)
  // Node's WebSocket reports a refused or unreachable host as a TypeError without a message.
  const message = (error?.message ?? String(err)).split('\n')[0]!.slice(0, 200)
  return message === '' ? 'the connection failed' : escapeControl(message)
}

/**
 * Like describeDialError, but when the WebSocket failed without saying why
 * (Node's WebSocket reports a refused or unreachable host as a bare
 * ErrorEvent), one TCP connection to the address's host and port finds out.
 */
export async function explainDialFailure (err: unknown, address: Multiaddr): Promise<string> {
  const described = describeDialError(err)
  if (!isWebSocketErrorEvent(err)) return described
  const target = hostAndPort(address)
  if (target == null) return described
  return new Promise(resolve => {
    const socket = connect({ ...target, timeout: PROBE_TIMEOUT_MS })
    const done = (reason: string): void => { socket.destroy(); resolve(reason) }
    socket.once('connect', () => { done('the WebSocket handshake failed (something else listens there, or ws/wss does not match)') })
    socket.once('timeout', () => { done('no answer in time') })
    socket.once('error', error => { done(describeDialError(error)) })
  })
}

function isWebSocketErrorEvent (err: unknown): boolean {
  return typeof err === 'object' && err != null && (err as any).type === 'error' && (err as any).constructor?.name === 'ErrorEvent'
}

function hostAndPort (address: Multiaddr): { host: string, port: number } | undefined {
  const components = address.getComponents()
  const host = components.find(c => ['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(c.name))?.value
  const port = Number(components.find(c => c.name === 'tcp')?.value)
  return host == null || !Number.isInteger(port) ? undefined : { host, port }
}
