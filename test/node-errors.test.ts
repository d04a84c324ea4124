/**
 * Errors a user sees name nodes by name and say their state, from the view,
 * the configured-peer dialer and the heartbeat (src/services/cluster/node-state.ts).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { describeDialError } from '../src/node/dial-errors.js'
import { NodeOfflineError } from '../src/services/errors.js'
import { freePort } from './helpers/ports.js'
import { testNodes } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
afterEach(async () => { await nodes.cleanup() })

const reconnect = { minDelayMs: 200, maxDelayMs: 2000 }

describe('errors that name nodes and their state', () => {
  it('a configured node that never answered is offline, with why, not "unknown target"', async () => {
    const port = await freePort()
    const home = await nodes.start({ nodeId: 'home', reconnect, peers: [{ nodeId: 'office', url: `ws://127.0.0.1:${port}` }] })
    await waitFor('the dialer to have failed once', () => home.node.dialer.get('office')?.state === 'waiting')
    expect(home.node.dialer.get('office')!.lastError).toBe('connection refused')
    const err = await home.node.client.send('office', 'hello').catch(e => e)
    expect(err).toBeInstanceOf(NodeOfflineError)
    expect(err.message).toMatch(/^office is offline \(configured; never connected; (retrying in \d+ s: connection refused|connecting now \(last try: connection refused\))\)$/)
  })

  it('a wrong secret shows as the peer refusing this node\'s secret, in the dialer table and in errors', async () => {
    const office = await nodes.start({ nodeId: 'office', listen: true, secret: 'another-cluster-secret-0123456789' })
    const home = await nodes.start({ nodeId: 'home', reconnect, peers: [{ nodeId: 'office', url: office.wsAddress() }] })
    await waitFor('the dialer to be refused', () => home.node.dialer.get('office')?.lastError === 'the peer refused this node\'s secret')
    const err = await home.node.client.tool('office', 'read', { path: 'x' }).catch(e => e)
    expect(err.message).toMatch(/^office is offline \(configured; never connected; .*the peer refused this node's secret\)\)?$/)
    expect(err.message).not.toMatch(/chacha|poly1305|EncryptionFailed/i)
  })

  it('the configured-peer table is never blank while retrying after a connection ends', async () => {
    const office = await nodes.start({ nodeId: 'office', listen: true })
    const home = await nodes.start({ nodeId: 'home', reconnect, peers: [{ nodeId: 'office', url: office.wsAddress() }] })
    await waitFor('home to connect', () => home.node.dialer.get('office')?.state === 'connected')
    await office.node.stop()
    await waitFor('home to retry', () => home.node.dialer.get('office')?.state !== 'connected')
    expect(home.node.dialer.get('office')!.lastError).toMatch(/the connection closed|connection refused/)
    expect(home.node.dialer.get('office')!.lastConnectedAt).toBeGreaterThan(0)
  })

  it('raw libp2p failures are told in words', () => {
    expect(describeDialError(Object.assign(new Error('handshake stage 1 validation fail: Invalid chacha20poly1305 decryption'), { name: 'EncryptionFailedError' })))
      .toBe('the peer refused this node\'s secret')
    expect(describeDialError(Object.assign(new Error('NO_RESERVATION'), { name: 'RelayError' }))).toMatch(/holds no reservation/)
    expect(describeDialError(new AggregateError([new Error('connect ECONNREFUSED 127.0.0.1:1')], 'All promises were rejected'))).toBe('connection refused')
    expect(describeDialError(new Error('odd\nline\u001b[2K'))).toBe('odd')
  })
})
