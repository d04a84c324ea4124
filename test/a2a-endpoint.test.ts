/**
 * The cluster's agents as A2A agents on a node's local endpoint, driven by
 * the official `@a2a-js/sdk` client: the agent is two hops away (home ->
 * relay -> office, both members dial out only), so every call crosses the
 * mesh through the relay as a clawmatrix task.
 */
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomUUID } from 'node:crypto'
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory, type Client } from '@a2a-js/sdk/client'
import { Role, TaskState, type Task } from '@a2a-js/sdk'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { alive } from './helpers/processes.js'
import { waitFor } from './helpers/wait.js'

const TASK_AGENT = [process.execPath, fileURLToPath(new URL('./fixtures/task-agent.mjs', import.meta.url))]
const TOKEN = 'proxy-token-for-the-a2a-test-0123'

const nodes = testNodes()
let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-a2a-')) })
afterEach(async () => { await nodes.cleanup() })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

/** home and office dial out to one relay; office runs the task agent as `coder`. */
async function twoHops (homeInput: Record<string, unknown> = {}): Promise<{ home: TestNode, office: TestNode }> {
  const relay = await nodes.start({ nodeId: 'relay', listen: true })
  const office = await nodes.start({
    nodeId: 'office',
    peers: [{ nodeId: 'relay', url: relay.wsAddress() }],
    agents: [{ id: 'coder', description: 'does what the task says', tags: ['code'], command: TASK_AGENT }]
  })
  const home = await nodes.start({ nodeId: 'home', peers: [{ nodeId: 'relay', url: relay.wsAddress() }], ...homeInput })
  await waitFor('home to reach office through the relay', () => home.node.view.nodes().find(n => n.nodeId === 'office')?.reach === 'relayed')
  return { home, office }
}

/** A user message in the SDK's own (protobuf) shape. */
function text (value: string): any {
  return { messageId: randomUUID(), role: Role.ROLE_USER, parts: [{ content: { $case: 'text', value }, metadata: undefined, filename: '', mediaType: '' }], contextId: '', taskId: '', metadata: undefined, extensions: [], referenceTaskIds: [] }
}

function answerOf (task: Task): string {
  return task.artifacts.flatMap(a => a.parts).map(p => p.content?.$case === 'text' ? p.content.value : '').join('')
}

async function clientFor (home: TestNode, agent = 'coder', token?: string): Promise<Client> {
  // The SDK's own way to add a header: a fetch that sets it, for the card and the calls alike.
  const fetchImpl: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers)
    if (token != null) headers.set('authorization', `Bearer ${token}`)
    return await fetch(input, { ...init, headers })
  }
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl })],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl })
  }))
  return await factory.createFromUrl(`${home.node.http.url}/a2a/${agent}/`)
}

describe('the A2A endpoint, two hops from the agent', () => {
  it('serves cards for the cluster and for each agent', async () => {
    const { home } = await twoHops()
    const cluster: any = await (await fetch(`${home.node.http.url}/.well-known/agent-card.json`)).json()
    expect(cluster.skills.map((s: any) => s.id)).toEqual(['coder'])
    const card: any = await (await fetch(`${home.node.http.url}/a2a/coder/.well-known/agent-card.json`)).json()
    expect(card).toMatchObject({ name: 'coder', description: 'does what the task says', url: `${home.node.http.url}/a2a/coder`, capabilities: { streaming: true } })
    const unknown = await fetch(`${home.node.http.url}/a2a/tester/.well-known/agent-card.json`)
    expect(unknown.status).toBe(404)
    expect(((await unknown.json()) as any).error.message).toBe('unknown agent "tester": the cluster offers agents [coder]')
  })

  it('sends a message and gets the answer, then continues the conversation with its contextId', async () => {
    const { home } = await twoHops()
    const client = await clientFor(home)
    const first = await client.sendMessage({ message: text('echo hello') } as any) as Task
    expect(first.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(answerOf(first)).toBe('hello (turns: 0; last: none)')
    expect(first.metadata).toMatchObject({ agentId: 'coder', nodeId: 'office' })
    const second = await client.sendMessage({ message: { ...text('echo again'), contextId: first.contextId } } as any) as Task
    expect(second.contextId).toBe(first.contextId)
    expect(answerOf(second)).toMatch(/^again \(turns: 2; last: agent hello/)
  })

  it('keeps a conversation under a contextId the client chose itself', async () => {
    const { home } = await twoHops()
    const client = await clientFor(home)
    const first = await client.sendMessage({ message: { ...text('echo one'), contextId: 'ctx-oc-mine' } } as any) as Task
    expect(first.contextId).toBe('ctx-oc-mine')
    const second = await client.sendMessage({ message: { ...text('echo two'), contextId: 'ctx-oc-mine' } } as any) as Task
    expect(second.contextId).toBe('ctx-oc-mine')
    expect(answerOf(second)).toMatch(/^two \(turns: 2; last: agent one/)
  })

  it('streams progress before the answer', async () => {
    const { home } = await twoHops()
    const client = await clientFor(home)
    const flag = join(dir, `go-${randomUUID()}`)
    const seen: string[] = []
    for await (const event of client.sendMessageStream({ message: text(`wait ${flag}`) } as any)) {
      const payload = event.payload
      if (payload?.$case === 'statusUpdate') {
        const said = payload.value.status?.message?.parts.map(p => p.content?.$case === 'text' ? p.content.value : '').join('') ?? ''
        seen.push(`${payload.value.status?.state}:${said}`)
        if (said === 'step 1') await writeFile(flag, 'go')
      } else if (payload?.$case === 'artifactUpdate') {
        seen.push(`artifact:${payload.value.artifact?.parts.map(p => p.content?.$case === 'text' ? p.content.value : '').join('')}`)
      }
    }
    const step1 = seen.indexOf(`${TaskState.TASK_STATE_WORKING}:step 1`)
    const done = seen.indexOf('artifact:done')
    expect(step1).toBeGreaterThanOrEqual(0)
    expect(done).toBeGreaterThan(step1)
    expect(seen.at(-1)).toBe(`${TaskState.TASK_STATE_COMPLETED}:`)
  })

  it('returns at once when asked, and the task can be polled to its end', async () => {
    const { home } = await twoHops()
    const client = await clientFor(home)
    const flag = join(dir, `go-${randomUUID()}`)
    const started = await client.sendMessage({ message: text(`wait ${flag}`), configuration: { returnImmediately: true } } as any) as Task
    expect([TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING]).toContain(started.status?.state)
    await writeFile(flag, 'go')
    const done = await waitFor('the task to complete', async () => {
      const task = await client.getTask({ id: started.id } as any)
      return task.status?.state === TaskState.TASK_STATE_COMPLETED ? task : undefined
    })
    expect(answerOf(done)).toBe('done')
  })

  it('carries input-required both ways: the question out, the answer into the same task', async () => {
    const { home } = await twoHops()
    const client = await clientFor(home)
    const asked = await client.sendMessage({ message: text('ask paint the shed') } as any) as Task
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
    expect(asked.status?.message?.parts[0]?.content).toEqual({ $case: 'text', value: 'which colour?' })
    const answered = await client.sendMessage({ message: { ...text('green'), taskId: asked.id, contextId: asked.contextId } } as any) as Task
    expect(answered.id).toBe(asked.id)
    expect(answered.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(answerOf(answered)).toBe('paint the shed in green')
  })

  it('cancels a running task and kills the agent\'s process tree', async () => {
    const { home } = await twoHops()
    const client = await clientFor(home)
    const pidFile = join(dir, `tree-${randomUUID()}`)
    const started = await client.sendMessage({ message: text(`tree ${pidFile}`), configuration: { returnImmediately: true } } as any) as Task
    await waitFor('the agent to start its process tree', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8') !== '')
    const grandchild = Number(readFileSync(pidFile, 'utf8'))
    const canceled = await client.cancelTask({ id: started.id } as any)
    expect(canceled.status?.state).toBe(TaskState.TASK_STATE_CANCELED)
    await waitFor('the grandchild to be gone', () => !alive(grandchild))
  })

  it('answers bad requests in JSON-RPC terms and keeps the proxy token in front', async () => {
    const { home } = await twoHops({ proxyToken: TOKEN })
    const post = async (body: string, auth = true): Promise<Response> => await fetch(`${home.node.http.url}/a2a/coder`, {
      method: 'POST', body, headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}) }
    })
    expect((await post('{}', false)).status).toBe(401)
    expect(((await (await post('not json')).json()) as any).error.code).toBe(-32700)
    expect(((await (await post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'Nope', params: {} }))).json()) as any).error.code).toBe(-32601)
    expect(((await (await post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'GetTask', params: { id: 'nope' } }))).json()) as any).error.code).toBe(-32001)
    const unknownAgent: any = await (await fetch(`${home.node.http.url}/a2a/tester`, {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'SendMessage', params: { message: { messageId: 'm-1', role: 'ROLE_USER', parts: [{ text: 'hi' }] } } })
    })).json()
    expect(unknownAgent.error).toMatchObject({ code: -32602, message: expect.stringMatching(/unknown .*"tester".*coder/) })
    const client = await clientFor(home, 'coder', TOKEN)
    expect(answerOf(await client.sendMessage({ message: text('echo through the token') } as any) as Task)).toBe('through the token (turns: 0; last: none)')
  })
})
