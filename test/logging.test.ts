import { disable, enable } from '@libp2p/logger'
import { afterAll, describe, expect, it } from 'vitest'
import { nodeLogger } from '../src/node/logging.js'
import { testNodes } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
afterAll(async () => { await nodes.cleanup() })

describe('debug logs', () => {
  it('put the node id after the first namespace segment, for clawmatrix and libp2p alike', () => {
    // The debug instance behind a Logger has its namespace; the interface does not declare it.
    const namespace = (name: string): string => (nodeLogger('hub').forComponent(name) as unknown as { namespace: string }).namespace
    expect(namespace('clawmatrix:heartbeat')).toBe('clawmatrix:hub:heartbeat')
    expect(namespace('libp2p:dialer')).toBe('libp2p:hub:dialer')
    expect(namespace('standalone')).toBe('standalone:hub')
  })

  it('tell apart two nodes in one process', async () => {
    const lines: string[] = []
    const write = process.stderr.write.bind(process.stderr)
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: any[]) => {
      lines.push(String(chunk))
      return write(chunk, ...rest)
    }) as typeof process.stderr.write
    enable('clawmatrix:*:dialer,clawmatrix:*:cluster')
    try {
      const alpha = await nodes.start({ nodeId: 'alpha', listen: true })
      await nodes.start({ nodeId: 'beta', peers: [{ nodeId: 'alpha', url: alpha.wsAddress() }] })
      await waitFor('beta to log its dial of alpha', () => lines.some(l => l.includes('clawmatrix:beta:dialer connected to configured peer alpha')))
      await waitFor('alpha to log beta joining', () => lines.some(l => l.includes('clawmatrix:alpha:cluster node beta joined')))
      expect(lines.some(l => l.includes('clawmatrix:alpha:dialer'))).toBe(false) // alpha has no configured peer
    } finally {
      disable()
      process.stderr.write = write
    }
  })
})
