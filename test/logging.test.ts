import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { disable, enable } from '@libp2p/logger'
import OpenAI from 'openai'
import { afterAll, describe, expect, it } from 'vitest'
import { Authority, joinInvite, loadJoinedState, withJoinedState } from '../src/membership/index.js'
import { nodeLogger } from '../src/node/logging.js'
import { FakeOpenAIServer } from './fixtures/fake-upstream/index.js'
import { testNodes } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
afterAll(async () => { await nodes.cleanup() })

/** Collects what the debug module writes to stderr while `run` runs; `echo` also lets it through. */
async function capturingStderr<T> (run: (lines: string[]) => Promise<T>, echo = true): Promise<T> {
  const lines: string[] = []
  const write = process.stderr.write.bind(process.stderr)
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: any[]) => {
    lines.push(...String(chunk).split('\n').filter(line => line !== ''))
    return echo ? write(chunk, ...rest) : true
  }) as typeof process.stderr.write
  try {
    return await run(lines)
  } finally {
    disable()
    process.stderr.write = write
  }
}

/** Every .ts file under a folder, recursively. */
async function sources (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries.filter(e => e.isFile() && e.name.endsWith('.ts')).map(e => join(e.parentPath, e.name))
}

describe('debug logs', () => {
  it('put the node id after the first namespace segment, for clawmatrix and libp2p alike', () => {
    // The debug instance behind a Logger has its namespace; the interface does not declare it.
    const namespace = (name: string): string => (nodeLogger('hub').forComponent(name) as unknown as { namespace: string }).namespace
    expect(namespace('clawmatrix:heartbeat')).toBe('clawmatrix:hub:heartbeat')
    expect(namespace('libp2p:dialer')).toBe('libp2p:hub:dialer')
    expect(namespace('standalone')).toBe('standalone:hub')
  })

  it('tell apart two nodes in one process', async () => {
    await capturingStderr(async lines => {
      enable('clawmatrix:*:dialer,clawmatrix:*:cluster')
      const alpha = await nodes.start({ nodeId: 'alpha', listen: true })
      await nodes.start({ nodeId: 'beta', peers: [{ nodeId: 'alpha', url: alpha.wsAddress() }] })
      await waitFor('beta to log its dial of alpha', () => lines.some(l => l.includes('clawmatrix:beta:dialer connected to configured peer alpha')))
      await waitFor('alpha to log beta joining', () => lines.some(l => l.includes('clawmatrix:alpha:cluster node beta joined')))
      expect(lines.some(l => l.includes('clawmatrix:alpha:dialer'))).toBe(false) // alpha has no configured peer
    })
  })

  it('name the connection and stream for a request served on a stream', async () => {
    await capturingStderr(async lines => {
      enable('clawmatrix:*:tool*')
      const office = await nodes.start({ nodeId: 'office', listen: true, toolProxy: { enabled: true, allow: ['read'] } })
      const home = await nodes.start({ nodeId: 'home', peers: [{ nodeId: 'office', url: office.wsAddress() }] })
      await waitFor('home to see office', () => home.node.view.nodes().some(n => n.nodeId === 'office' && n.reach === 'direct'))
      await home.node.client.tool('office', 'read', { path: 'missing.txt' }).catch(() => {})
      const connection = office.node.swarm.getConnections(home.node.peerId)[0]!
      // js-libp2p's scope: the component's namespace, then `:<connection id>:<stream id>`.
      await waitFor('office to log the call on its stream', () => lines.some(l =>
        new RegExp(`clawmatrix:office:tool:${connection.id}:\\S+ running read call `).test(l)))
    })
  })

  it('name the node in every clawmatrix line, membership and model upstream included', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clawmatrix-logging-'))
    const upstream = new FakeOpenAIServer()
    await upstream.start()
    try {
      const authority = await Authority.create(join(dir, 'authority'))
      const joined = async (nodeId: string): Promise<string> => {
        const stateDir = join(dir, nodeId)
        await joinInvite((await authority.invite({ nodeId })).token, stateDir)
        return stateDir
      }
      const member = async (nodeId: string, input: Record<string, unknown>) => {
        const stateDir = await joined(nodeId)
        return await nodes.start(withJoinedState({ nodeId, ...input }, await loadJoinedState(stateDir)), stateDir)
      }
      await joined('gamma')
      // Not echoed: every component of two nodes writes here.
      const lines = await capturingStderr(async lines => {
        enable('clawmatrix:*')
        const hub = await member('hub', { listen: true, models: [{ id: 'm', provider: 'vllm', baseUrl: upstream.url, upstreamModel: upstream.models[0] }] })
        const home = await member('home', { peers: [{ nodeId: 'hub', url: hub.wsAddress() }] })
        await waitFor('home to see hub\'s model', () => home.node.view.nodes().some(n => n.nodeId === 'hub' && n.models.length > 0))
        const client = new OpenAI({ baseURL: `${home.node.http.url}/v1`, apiKey: 'not-needed', maxRetries: 0 })
        await client.chat.completions.create({ model: 'clawmatrix/m', messages: [{ role: 'user', content: 'hello' }] })
        await hub.node.membership!.publishRevocation((await authority.revoke('gamma')).revocation)
        await waitFor('both to log the revocation', () => ['hub', 'home'].every(node =>
          lines.some(l => l.includes(`clawmatrix:${node}:membership revocation of gamma applied`))))
        await waitFor('hub to log its upstream request', () => lines.some(l => l.includes('clawmatrix:hub:models:http POST')))
        return lines
      }, false)
      const named = lines.filter(line => /\bclawmatrix:/.test(line))
      expect(named.length).toBeGreaterThan(0)
      for (const line of named) expect(line).toMatch(/\bclawmatrix:(hub|home)(:|\s)/)
    } finally {
      await upstream.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('come only from a node\'s logger: nothing under src/ makes an unscoped one', async () => {
    const root = new URL('../src/', import.meta.url).pathname
    const unscoped: string[] = []
    for (const file of await sources(root)) {
      if (file.endsWith('/node/logging.ts')) continue // nodeLogger: the one place a namespace is made
      const text = await readFile(file, 'utf8')
      if (/from '@libp2p\/logger'|from 'debug'|\bdefaultLogger\(/.test(text)) unscoped.push(file.slice(root.length))
    }
    expect(unscoped).toEqual([])
  })
})
