import { disable, enable } from '@libp2p/logger'
import { afterAll, describe, expect, it } from 'vitest'
import { nodeLogger } from '../src/node/logging.js'
import { testNodes } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
afterAll(async () => { await nodes.cleanup() })

describe('debug logs', () => {
  it('put the node id after the first namespace segment, for clawmatrix and libp2p alike', () => {
    const log = nodeLogger('hub')
    expect(log.forComponent('clawmatrix:heartbeat').namespace).toBe('clawmatrix:hub:heartbeat')
    expect(log.forComponent('libp2p:dialer').namespace).toBe('libp2p:hub:dialer')
    expect(log.forComponent('standalone').namespace).toBe('standalone:hub')
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
