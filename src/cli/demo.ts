import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../config/load.js'
import { DEFAULT_PROXY_PORT } from '../config/schema.js'
import { ClawmatrixNode } from '../services/clawmatrix-node.js'
import { DEMO_MODEL_NAME, startDemoModel } from './demo-model.js'
import { stderrLog, untilSignal } from './run-node.js'

/**
 * `npm start`: a local mesh with no config. A relay that listens and two
 * members that only dial out, on loopback, with a generated secret and
 * throw-away state, so a newcomer sees a working cluster and how to look at it.
 */
export async function runDemo (): Promise<void> {
  const secret = randomBytes(32).toString('hex')
  const stateRoot = await mkdtemp(join(tmpdir(), 'clawmatrix-demo-'))
  // Kept in a private file, never printed, so `clawmatrix inspect` can be tried against the demo.
  const secretFile = join(stateRoot, 'secret')
  await writeFile(secretFile, secret, { mode: 0o600 })
  const nodes: ClawmatrixNode[] = []
  // A tiny OpenAI-compatible model on loopback, hosted by beta, so the model proxy has something to serve.
  const model = await startDemoModel()
  try {
    const hub = await startNode(nodes, stateRoot, { nodeId: 'hub', secret, listen: true, listenHost: '127.0.0.1', listenPort: 0, tags: ['relay'] }, 0)
    const hubUrl = hub.swarm.getMultiaddrs().find(a => a.toString().includes('/ws/'))!.toString()
    for (const [i, [nodeId, tag]] of [['alpha', 'home'], ['beta', 'office']].entries()) {
      const models = nodeId === 'beta' ? [{ id: DEMO_MODEL_NAME, provider: 'builtin', baseUrl: model.url, description: 'the demo model: says your words backwards' }] : []
      await startNode(nodes, stateRoot, { nodeId, secret, tags: [tag], peers: [{ nodeId: 'hub', url: hubUrl }], models }, i + 1)
    }
    await waitForMesh(hub, nodes.length - 1)
    await waitForModel(nodes[1]!, DEMO_MODEL_NAME)

    const lines = ['', 'clawmatrix demo mesh is up: 3 nodes on loopback, secret generated for this run.', '']
    for (const node of nodes) {
      lines.push(`  ${node.config.nodeId.padEnd(6)} ${node.config.listen ? 'listens and relays' : 'dials out only    '}  ${node.http.url}/clawmatrix/status`)
    }
    const port = new URL(nodes[1]!.http.url).port
    const chat = JSON.stringify({ model: `clawmatrix/${DEMO_MODEL_NAME}`, stream: true, messages: [{ role: 'user', content: 'hello from the other side' }] })
    lines.push('', 'Look at it:', `  curl ${nodes[1]!.http.url}/clawmatrix/status`, `  npx clawmatrix status --port ${port}`,
      '', `Stream the model beta hosts through alpha's proxy (over the mesh, via the hub's relay):`,
      `  curl -N ${nodes[1]!.http.url}/v1/chat/completions -H 'content-type: application/json' -d '${chat}'`,
      '', 'Inspect the hub over the swarm, as a libp2p tool that holds the secret would:',
      `  CLAWMATRIX_SECRET=$(cat ${secretFile}) npx clawmatrix inspect ${hubUrl}`,
      '', `Watch the mesh in a browser: ${nodes[1]!.http.url}/clawmatrix/`,
      '', 'Press Ctrl-C to stop (state is in ' + stateRoot + ', removed on exit).', '')
    process.stdout.write(lines.join('\n') + '\n')
    await untilSignal()
  } finally {
    await Promise.allSettled(nodes.reverse().map(async node => { await node.stop() }))
    await model.stop()
    await rm(stateRoot, { recursive: true, force: true })
  }
}

async function startNode (nodes: ClawmatrixNode[], stateRoot: string, input: Record<string, unknown>, index: number): Promise<ClawmatrixNode> {
  const proxyPort = await freePort(DEFAULT_PROXY_PORT + index)
  const config = parseConfig({ ...input, proxyPort, heartbeat: { intervalMs: 5000 } })
  const tag = `[${config.nodeId}]`
  const log = { info: (m: string) => { stderrLog.info(`${tag} ${m}`) }, warn: (m: string) => { stderrLog.warn(`${tag} ${m}`) } }
  const node = await ClawmatrixNode.create({ config, stateDir: join(stateRoot, config.nodeId), log })
  await node.start()
  nodes.push(node)
  return node
}

async function waitForMesh (hub: ClawmatrixNode, peers: number): Promise<void> {
  const signal = AbortSignal.timeout(15_000)
  while (hub.swarm.getPeers().length < peers) {
    await new Promise<void>((resolve, reject) => {
      hub.swarm.addEventListener('peer:connect', () => { resolve() }, { once: true, signal })
      signal.addEventListener('abort', () => {
        reject(new Error(`the demo mesh did not form: hub sees ${hub.swarm.getPeers().length} of ${peers} peers`))
      }, { once: true })
    })
  }
}

/** Waits until `node` can route to `model`: the host's card has reached it. */
async function waitForModel (node: ClawmatrixNode, model: string): Promise<void> {
  const deadline = Date.now() + 15_000
  while (!node.view.nodes().some(n => !n.self && n.reach !== 'unreachable' && n.models.some(m => m.id === model))) {
    if (Date.now() > deadline) throw new Error(`the demo mesh did not form: ${node.config.nodeId} does not see the model ${model}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** The preferred port if it is free, else one the OS picks. */
async function freePort (preferred: number): Promise<number> {
  return new Promise(resolve => {
    const probe = createServer()
    probe.once('error', () => { resolve(0) })
    probe.listen(preferred, '127.0.0.1', () => { probe.close(() => { resolve(preferred) }) })
  })
}
