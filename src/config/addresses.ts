import { isIP } from 'node:net'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'

/**
 * Turns a peer url from the config into a multiaddr: `ws://host:port`,
 * `wss://host:port` or a multiaddr string. Throws with what was expected.
 */
export function peerUrlToMultiaddr (url: string): Multiaddr {
  if (url.startsWith('/')) {
    let ma: Multiaddr
    try {
      ma = multiaddr(url)
    } catch (err: any) {
      throw new Error(`not a valid multiaddr (${err.message})`)
    }
    const names = ma.getComponents().map(c => c.name)
    if (!names.includes('ws') && !names.includes('wss')) {
      throw new Error('a multiaddr must end in /ws, /wss or /tls/ws (WebSocket is the only transport)')
    }
    return ma
  }

  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new Error('expected ws://host:port, wss://host:port or a multiaddr')
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new Error(`scheme ${parsed.protocol} is not supported; expected ws:// or wss://`)
  }
  if (parsed.pathname !== '/' && parsed.pathname !== '') {
    throw new Error('a path is not supported; expected ws://host:port')
  }
  const secure = parsed.protocol === 'wss:'
  const port = parsed.port === '' ? (secure ? 443 : 80) : Number(parsed.port)
  const host = parsed.hostname.replace(/^\[|\]$/g, '')
  const family = isIP(host)
  const hostPart = family === 4 ? `/ip4/${host}` : family === 6 ? `/ip6/${host}` : `/dns/${host}`
  return multiaddr(`${hostPart}/tcp/${port}/${secure ? 'tls/ws' : 'ws'}`)
}

/** Whether a host name or address stays on this machine: `localhost`, `::1` or an IPv4 address in 127.0.0.0/8. */
export function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}
