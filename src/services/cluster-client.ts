import { randomUUID } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { describeDialError } from '../node/dial-errors.js'
import { DEFAULT_HANDOFF_TIMEOUT_MS, DEFAULT_SEND_TIMEOUT_MS } from './call-defaults.js'
import { NodeStates, type NodeStateSources } from './cluster/node-state.js'
import { NodeOfflineError, NodeUnreachableError, RemoteWorkError, SelfTargetError, UnknownTargetError } from './errors.js'
import { ClawmatrixProtocolError, NoCandidateAcceptedError, RefusedError } from './wire/errors.js'
import type { ClusterNode, ClusterView } from './cluster/cluster-view.js'
import type { Candidate } from './cluster/routing.js'
import type { WorkProtocols } from './work.js'
import type { PeerId } from '@libp2p/interface'

export { DEFAULT_HANDOFF_TIMEOUT_MS, DEFAULT_SEND_TIMEOUT_MS } from './call-defaults.js'

export interface CallOptions {
  /** Aborting cancels the call and the work it started on the remote node. */
  signal?: AbortSignal
  /** Overall deadline; each operation has its own default. */
  timeoutMs?: number
  /** Streamed output as it arrives: an exec's stdout/stderr, a read's content. */
  onOutput?: (channel: string, text: string) => void
  /** Hand-off progress as the remote agent reports it. */
  onProgress?: (message: string) => void
  /** The calling agent or session, passed along for the remote side's records. */
  from?: string
}

export interface HandoffOutcome {
  id: string
  nodeId: string
  agentId: string
  reply: string
}

export interface SendOutcome {
  id: string
  nodeId: string
  agentId: string
  /** The same message id had been delivered before; it was not delivered twice. */
  duplicate: boolean
}

export interface ToolOutcome {
  id: string
  nodeId: string
  tool: string
  /** Output by channel (`stdout`, `stderr`, `content` ...). */
  output: Record<string, string>
  /** Present when the remote's `toolProxy.maxOutputBytes` cut the output. */
  truncated?: unknown
  /** The tool's facts: exit code, path, bytes written ... */
  details: Record<string, unknown>
}

export interface ClusterClientNode extends NodeStateSources {
  config: { nodeId: string }
  view: ClusterView
  work: WorkProtocols
}

/**
 * The caller API: everything the agent tools, the CLI and scripts do with the
 * cluster goes through here. Targets (agent id, node id, `tags:...`) resolve
 * through the cluster view to ordered candidates, and work moves to the next
 * candidate when one refuses or cannot be reached before accepting.
 */
export class ClusterClient {
  /** Names nodes and says their state in every error this API throws. */
  readonly states: NodeStates

  constructor (private readonly node: ClusterClientNode) {
    this.states = new NodeStates(node)
  }

  /** Every node in the cluster, this one first, with what it offers and how it is reached. */
  peers (): ClusterNode[] {
    return this.node.view.nodes()
  }

  /** Runs `task` on the agent `target` resolves to and waits for its reply. */
  async handoff (target: string, task: string, context: unknown, options: CallOptions = {}): Promise<HandoffOutcome> {
    const id = randomUUID()
    const timeoutMs = options.timeoutMs ?? DEFAULT_HANDOFF_TIMEOUT_MS
    const groups = groupByAgent(this.agentCandidates(target))
    // Candidates are grouped by agent (a tags: target may match several); the same id keeps a retry from running twice.
    return this.firstGroup(groups, async (agent, peers) => {
      const result = await this.tracked(peers, async () => this.node.work.handoff.handoff(peers, { id, agent, task, context, timeoutMs, from: options.from }, {
        signal: options.signal,
        onProgress: progress => options.onProgress?.(progress.message)
      }))
      const nodeId = this.nodeIdOf(result.peer)
      if (result.status !== 'ok') {
        throw new RemoteWorkError(result.error?.code ?? result.status, `hand-off to agent "${agent}" on ${nodeId} ended ${result.status}: ${result.error?.message ?? result.text}`, nodeId)
      }
      return { id, nodeId, agentId: agent, reply: result.text }
    })
  }

  /** Delivers a one-way message into the session of the agent `target` resolves to. */
  async send (target: string, message: string, options: CallOptions = {}): Promise<SendOutcome> {
    const id = randomUUID()
    const groups = groupByAgent(this.agentCandidates(target))
    return this.firstGroup(groups, async (agent, peers) => {
      const receipt = await this.tracked(peers, async () => this.node.work.messages.send(peers, { id, agent, message, from: options.from }, {
        signal: options.signal,
        timeoutMs: options.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS
      }))
      return { id, nodeId: this.nodeIdOf(receipt.peer), agentId: agent, duplicate: receipt.duplicate }
    })
  }

  exec (node: string, request: { command: string, workdir?: string }, options: CallOptions = {}): Promise<ToolOutcome> {
    return this.tool(node, 'exec', request, options)
  }

  read (node: string, path: string, range: { offset?: number, limit?: number } = {}, options: CallOptions = {}): Promise<ToolOutcome> {
    return this.tool(node, 'read', { path, ...range }, options)
  }

  write (node: string, path: string, content: string, options: CallOptions = {}): Promise<ToolOutcome> {
    return this.tool(node, 'write', { path, content }, options)
  }

  edit (node: string, path: string, oldText: string, newText: string, options: CallOptions = {}): Promise<ToolOutcome> {
    return this.tool(node, 'edit', { path, oldText, newText }, options)
  }

  /**
   * Runs any tool the tool proxy of `node` offers, under that node's policy. Without a timeout the
   * executing node applies the tool's own default (exec 30 minutes, gateway tools 2 minutes, others 1);
   * keep-alives and the idle timeout still end the wait if that node goes silent.
   */
  async tool (node: string, tool: string, args: Record<string, unknown>, options: CallOptions = {}): Promise<ToolOutcome> {
    const peers = this.nodeCandidates(node)
    const result = await this.tracked(peers, async () => this.node.work.tools.call(peers, { tool, params: args, timeoutMs: options.timeoutMs }, {
      signal: options.signal,
      onOutput: output => options.onOutput?.(output.channel, output.text)
    }))
    const nodeId = this.nodeIdOf(result.peer)
    if (result.status !== 'ok') {
      throw new RemoteWorkError(result.error?.code ?? result.status, `${tool} on ${nodeId} ${result.status === 'error' ? 'failed' : `ended ${result.status}`}: ${result.error?.message ?? 'no reason given'}`, nodeId)
    }
    return { id: result.id, nodeId, tool, output: result.output, truncated: result.truncated, details: result.details ?? {} }
  }

  /**
   * The agents `target` resolves to, each with its candidate peers in order
   * (the task layer submits through these). Throws UnknownTargetError,
   * SelfTargetError or RefusedError `no-such-agent` when there are none.
   */
  agentTargets (target: string): Array<[agent: string, peers: PeerId[]]> {
    return groupByAgent(this.agentCandidates(target))
  }

  /** A node id for a peer, or the peer id when the cluster view does not know it. */
  nodeIdOf (peer: PeerId): string {
    return this.node.view.nodeIdOf(peer.toString()) ?? peer.toString()
  }

  /** Candidates with an agent for a hand-off or a message; a node id stands for the node's only agent. */
  private agentCandidates (target: string): Candidate[] {
    const problems: string[] = []
    const candidates = this.others(target, this.resolve(target)).flatMap(candidate => {
      if (candidate.agentId != null) return [candidate]
      const agents = this.node.view.card(candidate.peerId)?.agents.map(a => a.id) ?? []
      if (agents.length === 1) return [{ ...candidate, agentId: agents[0] }]
      problems.push(agents.length === 0
        ? `node ${candidate.nodeId} offers no agents`
        : `node ${candidate.nodeId} offers several agents (${agents.join(', ')}); name one as the target`)
      return []
    })
    if (candidates.length === 0) throw new RefusedError('no-such-agent', problems.join('; '))
    return candidates
  }

  /** A tool call names a node: its id, or `tags:...` for any node that has them. */
  private nodeCandidates (node: string): PeerId[] {
    const byNode = this.resolve(node).filter(c => c.agentId == null || node.startsWith('tags:') || c.nodeId === node)
    return this.others(node, byNode).map(c => peerIdFromString(c.peerId))
  }

  private others (target: string, candidates: Candidate[]): Candidate[] {
    const others = candidates.filter(c => c.reach !== 'self')
    if (others.length === 0) throw new SelfTargetError(target, this.node.config.nodeId)
    return others
  }

  /** Tries each agent's candidates in turn until one accepts; once accepted, its outcome is final. */
  private async firstGroup<T> (groups: Array<[string, PeerId[]]>, run: (agent: string, peers: PeerId[]) => Promise<T>): Promise<T> {
    const failures: unknown[] = []
    for (const [agent, peers] of groups) {
      try {
        return await run(agent, peers)
      } catch (err) {
        const refusedBeforeAccepting = err instanceof RefusedError || err instanceof NoCandidateAcceptedError
        if (!refusedBeforeAccepting || groups.length === 1) throw err
        failures.push(err)
      }
    }
    throw failures.at(-1)
  }

  /** The view's candidates; a node it knows of but cannot reach now is named with its state, not "unknown". */
  private resolve (target: string): Candidate[] {
    try {
      return this.node.view.resolve(target)
    } catch (err) {
      if (!(err instanceof UnknownTargetError) || this.node.view.leftAt(target.trim()) != null) throw err
      const state = this.states.describe(target.trim())
      if (state == null) throw err
      throw new NodeOfflineError(target.trim(), state)
    }
  }

  private async tracked<T> (peers: PeerId[], call: () => Promise<T>): Promise<T> {
    // Counted against the first choice: it is where the work most likely lands.
    const release = this.node.view.track(peers[0]!.toString())
    try {
      return await call()
    } catch (err) {
      throw this.named(err, peers)
    } finally {
      release()
    }
  }

  /**
   * The same error with nodes named and their state said: a raw libp2p
   * failure to reach a single candidate becomes `<state>: <why, in words>`,
   * each candidate of a failover is listed by name, and peer ids in any
   * other message become node names.
   */
  private named (err: unknown, peers: PeerId[]): unknown {
    if (!(err instanceof Error) || err.name === 'AbortError') return err
    const label = (peer: string): string => {
      const nodeId = this.node.view.nodeIdOf(peer)
      return nodeId == null ? this.states.nameOf(peer) : (this.states.describe(nodeId) ?? nodeId)
    }
    if (err instanceof NoCandidateAcceptedError && err.failures.length > 0) {
      err.message = `no node accepted: ${err.failures.map(f =>
        f.error instanceof ClawmatrixProtocolError ? `${this.states.nameOf(f.peer)}: ${f.error.message}` : `${label(f.peer)}: ${describeDialError(f.error)}`).join('; ')}`
      return err
    }
    if (!(err instanceof ClawmatrixProtocolError) && peers.length === 1) {
      return new NodeUnreachableError(`${label(peers[0]!.toString())}, and a stream to it failed: ${describeDialError(err)}`, { cause: err })
    }
    for (const peer of peers) {
      const id = peer.toString()
      if (err.message.includes(id)) err.message = err.message.replaceAll(id, this.states.nameOf(id))
    }
    return err
  }
}

function groupByAgent (candidates: Candidate[]): Array<[string, PeerId[]]> {
  const groups = new Map<string, PeerId[]>()
  for (const c of candidates) {
    const peers = groups.get(c.agentId!) ?? []
    peers.push(peerIdFromString(c.peerId))
    groups.set(c.agentId!, peers)
  }
  return [...groups]
}
