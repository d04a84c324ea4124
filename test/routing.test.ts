import { describe, expect, it } from 'vitest'
import { orderCandidates, resolveModel, resolveTarget, type RoutableNode } from '../src/services/cluster/routing.js'
import { UnknownTargetError } from '../src/services/errors.js'

function node (nodeId: string, extra: Partial<RoutableNode> = {}): RoutableNode {
  return { nodeId, peerId: `peer-${nodeId}`, reach: 'direct', rttMs: 5, inFlight: 0, tags: [], agents: [], models: [], ...extra }
}

const cluster = [
  node('home', { reach: 'self', tags: ['home'], agents: [{ id: 'main', tags: [] }] }),
  node('gpu-1', { tags: ['gpu', 'office'], rttMs: 3, agents: [{ id: 'coder', tags: ['code'] }], models: [{ id: 'qwen' }] }),
  node('gpu-2', { tags: ['gpu'], reach: 'relayed', rttMs: 1, agents: [{ id: 'coder', tags: ['code'] }], models: [{ id: 'qwen' }] }),
  node('lab', { tags: ['office'], reach: 'unreachable', rttMs: undefined, agents: [{ id: 'reviewer', tags: ['code', 'gpu'] }] })
]

describe('target resolution', () => {
  it('an agent id yields every node offering it, direct before relayed', () => {
    expect(resolveTarget('coder', cluster).map(c => [c.nodeId, c.agentId])).toEqual([['gpu-1', 'coder'], ['gpu-2', 'coder']])
  })

  it('a node id yields that node', () => {
    expect(resolveTarget('lab', cluster).map(c => c.nodeId)).toEqual(['lab'])
  })

  it('tags:a,b means all of them, from the node and its agents', () => {
    expect(resolveTarget('tags:gpu', cluster).map(c => [c.nodeId, c.agentId])).toEqual([['gpu-1', undefined], ['gpu-2', undefined], ['lab', 'reviewer']])
    expect(resolveTarget('tags:gpu,office', cluster).map(c => [c.nodeId, c.agentId])).toEqual([['gpu-1', undefined], ['lab', 'reviewer']])
    expect(resolveTarget('tags:code,office', cluster).map(c => [c.nodeId, c.agentId])).toEqual([['gpu-1', 'coder'], ['lab', 'reviewer']])
  })

  it('an unknown target lists what the cluster offers', () => {
    expect(() => resolveTarget('tester', cluster)).toThrow(UnknownTargetError)
    expect(() => resolveTarget('tester', cluster)).toThrow('unknown target "tester": the cluster offers agents [coder, main, reviewer], nodes [gpu-1, gpu-2, home, lab], tags [code, gpu, home, office]')
    expect(() => resolveTarget('tags:tpu', cluster)).toThrow(/unknown target "tags:tpu"/)
    expect(() => resolveTarget('tags:', cluster)).toThrow(/name at least one tag/)
  })

  it('models resolve by id or clawmatrix/id, and an unknown one lists the models', () => {
    expect(resolveModel('clawmatrix/qwen', cluster).map(c => c.nodeId)).toEqual(['gpu-1', 'gpu-2'])
    expect(resolveModel('qwen', cluster).map(c => c.nodeId)).toEqual(['gpu-1', 'gpu-2'])
    expect(() => resolveModel('llama', cluster)).toThrow('unknown model "llama": the cluster offers qwen')
  })
})

describe('candidate order', () => {
  const c = (nodeId: string, reach: RoutableNode['reach'], rttMs: number | undefined, inFlight = 0) => ({ nodeId, peerId: nodeId, reach, rttMs, inFlight })

  it('puts reachable before unreachable, self then direct then relayed', () => {
    const order = orderCandidates([c('u', 'unreachable', 1), c('r', 'relayed', 1), c('d', 'direct', 50), c('s', 'self', undefined)])
    expect(order.map(x => x.nodeId)).toEqual(['s', 'd', 'r', 'u'])
  })

  it('prefers the lower round-trip time, unknown last', () => {
    expect(orderCandidates([c('slow', 'direct', 40), c('unknown', 'direct', undefined), c('fast', 'direct', 4)]).map(x => x.nodeId))
      .toEqual(['fast', 'slow', 'unknown'])
  })

  it('among near-equal times, prefers fewer requests in flight', () => {
    expect(orderCandidates([c('busy', 'direct', 10, 3), c('idle', 'direct', 11, 0)]).map(x => x.nodeId)).toEqual(['idle', 'busy'])
    // Far apart, the time wins over the load.
    expect(orderCandidates([c('busy', 'direct', 2, 3), c('idle', 'direct', 40, 0)]).map(x => x.nodeId)).toEqual(['busy', 'idle'])
  })

  it('breaks full ties by node id, whatever the input order', () => {
    const tied = [c('b', 'direct', 5), c('c', 'direct', 5), c('a', 'direct', 5)]
    expect(orderCandidates(tied).map(x => x.nodeId)).toEqual(['a', 'b', 'c'])
    expect(orderCandidates([...tied].reverse()).map(x => x.nodeId)).toEqual(['a', 'b', 'c'])
  })
})
