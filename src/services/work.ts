import { A2AAgentRunner } from './a2a/agent-runner.js'
import { CommandAgentRunner } from './agents/command-runner.js'
import { InboxMessageSink, type MessageSink } from './agents/message-sink.js'
import { AgentRunners, type AgentRunner } from './agents/runner.js'
import { HandoffProtocol } from './protocols/handoff.js'
import { SendProtocol } from './protocols/send.js'
import { ToolProtocol } from './protocols/tool.js'
import { builtinToolRegistry } from './tools/builtin.js'
import { ToolExecutor } from './tools/executor.js'
import { type ToolRegistry } from './tools/registry.js'
import { libp2pComponents } from './wire/components.js'
import type { StreamProtocolInit } from './protocols/common.js'
import type { PeerDescriber } from './wire/path.js'
import type { Config } from '../config/schema.js'
import type { Swarm } from '../node/swarm.js'
import type { ShutdownState } from './shutdown.js'
import type { WorkAudit } from './audit/served-work.js'
import type { Startable } from '@libp2p/interface'

/** What an embedder (the OpenClaw plugin) supplies to run work; standalone defaults otherwise. */
export interface WorkInit {
  /** Runs hand-offs; default: agents with a `command` in the config. */
  agentRunner?: AgentRunner
  /** Takes one-way messages; default: a JSON-lines inbox per agent in the state dir. */
  messageSink?: MessageSink
  /** Tools the tool proxy offers; default: exec, read, write, edit. */
  tools?: ToolRegistry
  /** Per-caller policy (managed clusters' allowFrom): a refusal before a request is served. */
  admit?: StreamProtocolInit['admit']
  /** Appends every call served here to the node's audit log. */
  audit?: WorkAudit
}

/** What the work protocols learn from the node they serve. */
export interface WorkNode {
  /** New work is refused while the node shuts down. */
  shutdown?: ShutdownState
  /** Callers are named by the cluster view: agents are told who asked (`home/main`). */
  nodeIdOf?(peerId: string): string | undefined
  /** Names peers and says their state in errors (a relay that died under a request). */
  describePeer?: PeerDescriber
}

/** The three work protocols a node serves and calls: hand-off, one-way message, tool proxy. */
export class WorkProtocols implements Startable {
  readonly handoff: HandoffProtocol
  readonly messages: SendProtocol
  readonly tools: ToolProtocol
  /** How this node runs its agents (for hand-offs, and for the task layer). */
  readonly agents: AgentRunner
  /** The per-caller policy every protocol that runs work here applies (the task layer too). */
  readonly admit: StreamProtocolInit['admit']
  /** The audit every protocol that runs work here records to (the task layer too). */
  readonly audit?: WorkAudit
  /** Names peers and their state in errors; the task layer's protocol uses it too. */
  readonly describePeer?: PeerDescriber

  constructor (swarm: Swarm, config: Config, stateDir: string, init: WorkInit = {}, node: WorkNode = {}) {
    // Remote commands never see the cluster secret or the model keys of this node.
    const hiddenEnv = config.models.flatMap(m => m.apiKeyEnv == null ? [] : [m.apiKeyEnv])
    const components = libp2pComponents(swarm)
    const { nodeId } = config
    // External A2A agents run the same way whoever runs the node's own agents.
    this.agents = new AgentRunners([new A2AAgentRunner(config.agents), init.agentRunner ?? new CommandAgentRunner(config.agents, { hiddenEnv, logger: swarm.logger })])
    const refuse = node.shutdown?.refusal
    const { nodeIdOf, describePeer } = node
    this.describePeer = describePeer
    const admit = this.admit = init.admit
    const audit = this.audit = init.audit
    this.handoff = new HandoffProtocol(components, { nodeId, refuse, admit, audit, nodeIdOf, describePeer, runner: this.agents })
    this.messages = new SendProtocol(components, { nodeId, refuse, admit, audit, nodeIdOf, describePeer, sink: init.messageSink ?? new InboxMessageSink(stateDir, config.agents) })
    const executor = new ToolExecutor({ nodeId, config: config.toolProxy, registry: init.tools ?? builtinToolRegistry(), hiddenEnv })
    this.tools = new ToolProtocol(components, { nodeId, refuse, admit, audit, describePeer, executor })
  }

  async start (): Promise<void> {
    await Promise.all([this.handoff.start(), this.messages.start(), this.tools.start()])
  }

  /** Cancels running hand-offs and tool calls (killing their processes), and keeps serving (refusals). */
  cancelRunning (reason: string): void {
    this.handoff.cancelRunning(reason)
    this.tools.cancelRunning(reason)
  }

  /** Cancels running hand-offs and tool calls (killing their processes) and stops serving. */
  async stop (): Promise<void> {
    await Promise.all([this.handoff.stop(), this.messages.stop(), this.tools.stop()])
  }
}
