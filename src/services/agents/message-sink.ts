import { appendFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { AgentConfig } from '../../config/schema.js'

/** Who sent a one-way message. */
export interface MessageOrigin {
  /** The sending node's peer id, as authenticated by the connection. */
  peerId: string
  /** What the sender calls itself (its agent or session); informational, not authenticated. */
  label?: string
  /** The sending node's name in the cluster view, found by its authenticated peer id. */
  nodeId?: string
}

/** `home/main`: the sending node (by name when the view knows it) and what the sender calls itself. */
export function describeOrigin (from: MessageOrigin): string {
  const node = from.nodeId ?? from.peerId
  return from.label == null || from.label === '' ? node : `${node}/${from.label}`
}

export interface DeliverOptions {
  /** The message id, unique per message. */
  id: string
  signal: AbortSignal
}

/**
 * Where one-way messages for this node's agents go. Standalone nodes use
 * InboxMessageSink; the OpenClaw plugin injects them into the agent's session.
 */
export interface MessageSink {
  /** Whether `agentId` takes messages here; messages to any other agent are refused. */
  has(agentId: string): boolean | Promise<boolean>
  /** Resolves once the message is stored or handed over; a rejection is reported to the sender. */
  deliver(agentId: string, message: string, from: MessageOrigin, options: DeliverOptions): Promise<void>
}

export const INBOX_DIR = 'inbox'

/**
 * The standalone sink: appends each message as one JSON line to
 * `<stateDir>/inbox/<agentId>.jsonl` (`{id, at, from, message}`), for the
 * agent's command, a script or a person to pick up. A standalone command
 * agent has no session to inject into, and running it per message would
 * turn a message into a task, so messages wait in the inbox instead.
 */
export class InboxMessageSink implements MessageSink {
  private readonly agents: Set<string>

  constructor (private readonly stateDir: string, agents: AgentConfig[]) {
    this.agents = new Set(agents.map(agent => agent.id))
  }

  has (agentId: string): boolean {
    return this.agents.has(agentId)
  }

  inboxPath (agentId: string): string {
    return join(this.stateDir, INBOX_DIR, `${agentId}.jsonl`)
  }

  async deliver (agentId: string, message: string, from: MessageOrigin, options: DeliverOptions): Promise<void> {
    options.signal.throwIfAborted()
    await mkdir(join(this.stateDir, INBOX_DIR), { recursive: true, mode: 0o700 })
    const line = JSON.stringify({ id: options.id, at: new Date().toISOString(), from, message }) + '\n'
    // One append call per line: concurrent deliveries never interleave within a line (O_APPEND).
    await appendFile(this.inboxPath(agentId), line, { mode: 0o600 })
  }
}
