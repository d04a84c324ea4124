/**
 * The A2A endpoint on a node's local HTTP server (docs/a2a.md), built on the
 * node's task layer.
 */
import { a2aEndpoint, type A2AEndpointInit } from './endpoint.js'
import type { ClawmatrixNode } from '../services/clawmatrix-node.js'
import type { TaskService } from '../tasks/service.js'
import type { Startable } from '@libp2p/interface'

export type { A2AEndpointInit } from './endpoint.js'

/** Serves the cluster's agents over A2A from `node`'s endpoint while it runs. */
export function attachA2A (node: ClawmatrixNode, tasks: TaskService, init?: A2AEndpointInit): Startable {
  const { nodeId } = node.config
  const endpoint = a2aEndpoint({ nodeId, http: node.http, view: node.view, tasks, log: node.swarm.logger.forComponent('clawmatrix:a2a') }, init)
  node.extend(endpoint, 'a2a')
  return endpoint
}
