/**
 * What the cluster tools need to send work to other nodes: the caller API
 * of the services side (src/services/cluster-client.ts, `node.client`).
 * Tools see only this slice of it, so a test or an embedder can hand the
 * runtime another implementation (MeshRuntime.clusterClient).
 *
 * Targets: `target` is an agent id, a node id or `tags:<tag>[,<tag>...]`,
 * resolved through the cluster view; `node` names one node. An unknown
 * target rejects with UnknownTargetError, whose message lists what the
 * cluster offers.
 */
import type { ClusterClient as CallerApi } from '../services/cluster-client.js'

export type ClusterClient = Pick<CallerApi, 'handoff' | 'send' | 'exec' | 'read' | 'write' | 'tool'>

export type { CallOptions, HandoffOutcome, SendOutcome, ToolOutcome } from '../services/cluster-client.js'
