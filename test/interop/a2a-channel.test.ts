/**
 * OpenClaw's own A2A channel (bundled with the gateway) as a client of the
 * clawmatrix A2A endpoint: a real gateway names a node's `/a2a/<agentId>` as
 * an outbound peer, and `openclaw message send --channel a2a` reaches an
 * agent on another node of the mesh.
 */
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testNodes, SECRET, type TestNode } from '../helpers/nodes.js'
import { waitFor } from '../helpers/wait.js'
import { freePort, Gateway, interopRoot, preparePlugin } from './helpers/gateway.js'

const TASK_AGENT = [process.execPath, fileURLToPath(new URL('../fixtures/task-agent.mjs', import.meta.url))]
// As in the other interop tests. Measured at load 10-11 on 2 cores: the gateway was ready after 160 s and each
// `message send` took 51-57 s (OpenClaw loads anew per call); at load 19 that is past the 300 s and 120 s this had.
const STARTUP_MS = 480_000
/** A CLI call loads OpenClaw and the plugin anew: tens of seconds on a busy 2-core machine. */
const CLI_MS = 240_000
/** The task runs a child process on a node of the mesh after the send returned. */
const TASK_MS = 60_000

const nodes = testNodes()
let cleanupRoot: () => Promise<void>
let gateway: Gateway
let hub: TestNode

beforeAll(async () => {
  const { root, cleanup } = await interopRoot()
  cleanupRoot = cleanup
  hub = await nodes.start({ nodeId: 'hub', listen: true })
  const office = await nodes.start({ nodeId: 'office', peers: [{ nodeId: 'hub', url: hub.wsAddress() }], agents: [{ id: 'coder', command: TASK_AGENT }] })
  await waitFor('hub to see the coder on office', () => hub.node.view.nodes().some(n => n.nodeId === office.node.config.nodeId && n.agents.length === 1))
  gateway = await Gateway.create({
    name: 'a2a-client',
    pluginDir: await preparePlugin(root),
    clawmatrix: { nodeId: 'gateway', secret: SECRET, proxyPort: await freePort() },
    configure: config => {
      config.plugins.allow.push('a2a')
      config.channels = { a2a: { enabled: true, peers: { cluster: { token: 'inbound-token-0123456789abcdef', url: `${hub.node.http.url}/a2a/coder` } } } }
    }
  }, root)
  await gateway.start(STARTUP_MS)
}, STARTUP_MS + 60_000)

afterAll(async () => {
  await gateway?.close()
  await nodes.cleanup()
  await cleanupRoot?.()
})

describe('OpenClaw\'s A2A channel reaching a cluster agent', () => {
  it('sends a message that runs on an agent two nodes away', async () => {
    const sent = await gateway.cli(['message', 'send', '--channel', 'a2a', '--target', 'cluster', '--message', 'echo from openclaw', '--json'], CLI_MS)
    expect(sent.code, `${sent.stdout}\n${sent.stderr}`).toBe(0)
    const task = await waitFor('the task to complete on office', () => hub.tasks.list().find(t => t.task === 'echo from openclaw' && t.state === 'completed'), { timeoutMs: TASK_MS })
    expect(task).toMatchObject({ agent: 'coder', node: 'office', result: 'from openclaw (turns: 0; last: none)' })
    // The channel names its conversation itself; a second message continues it.
    const again = await gateway.cli(['message', 'send', '--channel', 'a2a', '--target', 'cluster', '--message', 'echo again', '--json'], CLI_MS)
    expect(again.code, `${again.stdout}\n${again.stderr}`).toBe(0)
    const second = await waitFor('the second task to complete', () => hub.tasks.list().find(t => t.task === 'echo again' && t.state === 'completed'), { timeoutMs: TASK_MS })
    expect(second.contextId).toBe(task.contextId)
    expect(second.result).toMatch(/^again \(turns: 2; last: agent from openclaw/)
  }, 2 * CLI_MS + 2 * TASK_MS)
})
