import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config/load.js'
import { ClawmatrixNode } from '../src/services/clawmatrix-node.js'
import { attachA2A } from '../src/a2a/index.js'
import { attachTasks } from '../src/tasks/service.js'
import { LogLines, SECRET, testNodes } from './helpers/nodes.js'
import { freePort } from './helpers/ports.js'
import type { Config } from '../src/config/schema.js'
import type { Startable } from '@libp2p/interface'

const nodes = testNodes()
let stateDir: string
let hubAddress: string

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'clawmatrix-lifecycle-'))
  const hub = await nodes.start({ nodeId: 'hub', listen: true })
  hubAddress = hub.wsAddress()
})

afterAll(async () => {
  await nodes.cleanup()
  await rm(stateDir, { recursive: true, force: true })
})

/** A listening node on fixed free ports, with a configured peer and a model, so every part has work to do. */
async function config (): Promise<Config> {
  return parseConfig({
    nodeId: 'subject',
    secret: SECRET,
    listen: true,
    listenHost: '127.0.0.1',
    listenPort: await freePort(),
    proxyPort: await freePort(),
    peers: [{ nodeId: 'hub', url: hubAddress }],
    models: [{ id: 'm', provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1' }],
    agents: [{ id: 'a', description: 'echo', command: ['cat'] }]
  })
}

async function bindable (port: number): Promise<boolean> {
  const server: Server = createServer()
  return new Promise(resolve => {
    server.once('error', () => { resolve(false) })
    server.listen(port, '127.0.0.1', () => { server.close(() => { resolve(true) }) })
  })
}

async function expectReleased (node: ClawmatrixNode, cfg: Config): Promise<void> {
  expect(node.swarm.status).toBe('stopped')
  expect(node.swarm.getConnections()).toEqual([])
  expect(await bindable(cfg.listenPort)).toBe(true)
  expect(await bindable(cfg.proxyPort)).toBe(true)
}

/**
 * Makes the part at `index` throw after doing its real work: the worst case, a
 * part that bound or registered something and then threw. Returns the undo.
 */
function failAfterStart (node: ClawmatrixNode, index: number): () => void {
  const [name, part] = node.parts[index]! as [string, Startable & { start: Startable['start'] }]
  const realStart = part.start
  part.start = async function () {
    await realStart.call(this)
    throw new Error(`injected failure in ${name}`)
  }
  return () => { part.start = realStart }
}

/** Starts `node` and checks it serves: the retry after a failed start. */
async function expectStarts (node: ClawmatrixNode): Promise<void> {
  await node.start()
  try {
    const res = await fetch(`${node.http.url}/clawmatrix/status`)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ nodeId: 'subject' })
  } finally {
    await node.stop()
  }
}

describe('node lifecycle', () => {
  it('names its parts in start order', async () => {
    const node = await ClawmatrixNode.create({ config: await config(), stateDir, log: new LogLines() })
    expect(node.parts.map(([name]) => name)).toEqual([
      'swarm', 'status', 'heartbeat', 'view', 'connector', 'idle closer', 'departed peers', 'cluster log', 'work', 'work routes', 'audit route',
      'model proxy', 'inspection', 'announcer', 'card snapshots', 'dialer', 'http'
    ])
  })

  it('a part failing after it started stops every part started before it and itself; a retry starts', async () => {
    const names = (await ClawmatrixNode.create({ config: await config(), stateDir, log: new LogLines() })).parts.map(([name]) => name)
    for (const [index, name] of names.entries()) {
      const cfg = await config()
      const node = await ClawmatrixNode.create({ config: cfg, stateDir, log: new LogLines() })
      const restore = failAfterStart(node, index)
      await expect(node.start(), name).rejects.toThrow(`injected failure in ${name}`)
      await expectReleased(node, cfg)

      restore()
      await expectStarts(await ClawmatrixNode.create({ config: cfg, stateDir, log: new LogLines() }))
      await expectReleased(node, cfg)
    }
  })

  it('the task layer and the A2A endpoint are parts too: started after the node, undone when one fails, serving only while running', async () => {
    const withLayers = async (cfg: Config): Promise<ClawmatrixNode> => {
      const node = await ClawmatrixNode.create({ config: cfg, stateDir, log: new LogLines() })
      attachA2A(node, attachTasks(node, stateDir))
      return node
    }
    const names = (await withLayers(await config())).parts.map(([name]) => name)
    expect(names.slice(-4)).toEqual(['dialer', 'tasks', 'a2a', 'http'])
    for (const name of ['tasks', 'a2a']) {
      const cfg = await config()
      const node = await withLayers(cfg)
      failAfterStart(node, names.indexOf(name))
      await expect(node.start(), name).rejects.toThrow(`injected failure in ${name}`)
      await expectReleased(node, cfg)
    }
    const cfg = await config()
    const node = await withLayers(cfg)
    await node.start()
    try {
      expect((await fetch(`${node.http.url}/clawmatrix/tasks`)).status).toBe(200)
      expect((await fetch(`${node.http.url}/.well-known/agent-card.json`)).status).toBe(200)
    } finally {
      await node.stop()
    }
    await expectReleased(node, cfg)
  })

  it('a taken listen port fails the start with the field named, and releases the HTTP port', async () => {
    const cfg = await config()
    const squatter = createServer()
    await new Promise<void>(resolve => squatter.listen(cfg.listenPort, '127.0.0.1', resolve))
    const node = await ClawmatrixNode.create({ config: cfg, stateDir, log: new LogLines() })
    try {
      await expect(node.start()).rejects.toThrow(`cannot listen on 127.0.0.1:${cfg.listenPort} (listenPort): the port is already in use by another process`)
    } finally {
      await new Promise(resolve => squatter.close(resolve))
    }
    await expectReleased(node, cfg)
    await expectStarts(node)
  })

  it('a taken HTTP port, found last, stops every other part and frees the listen port', async () => {
    const cfg = await config()
    const squatter = createServer()
    await new Promise<void>(resolve => squatter.listen(cfg.proxyPort, '127.0.0.1', resolve))
    const node = await ClawmatrixNode.create({ config: cfg, stateDir, log: new LogLines() })
    try {
      await expect(node.start()).rejects.toThrow(`cannot serve HTTP on 127.0.0.1:${cfg.proxyPort} (proxyPort): the port is already in use by another process`)
      expect(node.swarm.status).toBe('stopped')
      expect(await bindable(cfg.listenPort)).toBe(true)
    } finally {
      await new Promise(resolve => squatter.close(resolve))
    }
    await expectStarts(node)
  })
})
