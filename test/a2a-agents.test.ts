/**
 * External A2A agents offered to the cluster (`agents[].a2a`): a hand-off
 * from another node crosses the mesh to the node that offers the agent,
 * which calls it over A2A with a token that never leaves it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startExternalA2AAgent, type ExternalA2AAgent } from './fixtures/a2a-agent.js'
import { testNodes, type TestNode } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
const agents: ExternalA2AAgent[] = []
afterEach(async () => {
  await nodes.cleanup()
  await Promise.all(agents.splice(0).map(async a => { await a.close() }))
  delete process.env.CLAWMATRIX_TEST_A2A_TOKEN
})

const TOKEN = 'a2a-token-for-the-reverser-0123'

async function offeredBy (agent: ExternalA2AAgent, tokenEnv?: string): Promise<{ home: TestNode, office: TestNode }> {
  const office = await nodes.start({
    nodeId: 'office',
    listen: true,
    agents: [{ id: 'reverser', description: 'an external A2A agent', a2a: { url: agent.url, ...(tokenEnv == null ? {} : { tokenEnv }) } }]
  })
  const home = await nodes.start({ nodeId: 'home', peers: [{ nodeId: 'office', url: office.wsAddress() }] })
  await waitFor('home to see the reverser', () => home.node.view.nodes().some(n => n.agents.some(a => a.id === 'reverser')))
  return { home, office }
}

describe('an external A2A agent as a cluster agent', () => {
  it('answers a hand-off from another node, with the token only on the offering node', async () => {
    process.env.CLAWMATRIX_TEST_A2A_TOKEN = TOKEN
    const agent = await startExternalA2AAgent({ token: TOKEN })
    agents.push(agent)
    const { home } = await offeredBy(agent, 'CLAWMATRIX_TEST_A2A_TOKEN')
    const progress: string[] = []
    const outcome = await home.node.client.handoff('reverser', 'hello', undefined, { onProgress: message => { progress.push(message) } })
    expect(outcome).toMatchObject({ nodeId: 'office', agentId: 'reverser', reply: 'olleh from the external agent' })
    expect(progress).toContain('reversing 5 characters')
    expect(agent.authorizations.every(a => a === `Bearer ${TOKEN}`)).toBe(true)
  })

  it('says plainly when the external agent refuses the node\'s token', async () => {
    const agent = await startExternalA2AAgent({ token: TOKEN })
    agents.push(agent)
    const { home } = await offeredBy(agent)
    const failure = await home.node.client.handoff('reverser', 'hello', undefined).catch(err => err)
    expect(failure.message).toMatch(/A2A agent "reverser" refused this node's token \(HTTP 401/)
    expect(failure.message).not.toContain(TOKEN)
  })

  it('carries a conversation and input-required through tasks to the external agent', async () => {
    const agent = await startExternalA2AAgent()
    agents.push(agent)
    const { home } = await offeredBy(agent)
    const asked = await home.tasks.untilSettled((await home.tasks.submit('reverser', 'ask paint the shed')).id)
    expect(asked).toMatchObject({ state: 'input-required', question: 'which colour?' })
    await home.tasks.message(asked.id, 'green')
    const done = await home.tasks.untilSettled(asked.id)
    expect(done).toMatchObject({ state: 'completed', result: 'paint the shed in green' })
    // The external agent saw one conversation: clawmatrix's contextId, both times.
    expect(agent.contexts).toEqual([asked.contextId, asked.contextId])
  })

  it('cancels the external task when the caller cancels the hand-off', async () => {
    const agent = await startExternalA2AAgent({ slow: true })
    agents.push(agent)
    const { home } = await offeredBy(agent)
    const cancel = new AbortController()
    const call = home.node.client.handoff('reverser', 'take your time', undefined, {
      signal: cancel.signal,
      onProgress: () => { cancel.abort(new Error('the caller changed its mind')) }
    }).catch(err => err)
    expect(await call).toBeInstanceOf(Error)
    await waitFor('the external agent to see the cancel', () => agent.canceled.length === 1)
  })
})
