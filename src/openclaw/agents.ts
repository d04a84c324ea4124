/**
 * The `agents` a gateway offers the cluster are its own OpenClaw agents (an
 * `a2a` or `command` agent excepted). They are checked when the node
 * starts, so a typo is a warning naming the agents the gateway has instead
 * of OpenClaw's `Agent "ghost" no longer exists in configuration` at the
 * first hand-off.
 */
import type { AgentConfig } from '../config/schema.js'

/** The part of OpenClaw's config that names its agents. */
export interface OpenClawAgentsConfig {
  agents?: {
    /** The current roster: agent id -> overrides. */
    entries?: Record<string, unknown>
    /** The legacy roster. */
    list?: Array<{ id?: unknown }>
  }
}

/** OpenClaw's default (and, without a roster, only) agent. */
export const DEFAULT_OPENCLAW_AGENT = 'main'

/** The agent ids this gateway has: its roster, or `main` when it has none. */
export function openclawAgentIds (config: OpenClawAgentsConfig | undefined): string[] {
  const ids = new Set<string>([
    ...Object.keys(config?.agents?.entries ?? {}),
    ...(config?.agents?.list ?? []).flatMap(agent => typeof agent?.id === 'string' ? [agent.id] : [])
  ])
  return ids.size === 0 ? [DEFAULT_OPENCLAW_AGENT] : [...ids].sort()
}

/** One warning per offered agent this gateway does not have. */
export function unknownAgentWarnings (offered: AgentConfig[], config: OpenClawAgentsConfig | undefined): string[] {
  const known = openclawAgentIds(config)
  return offered
    .filter(agent => agent.a2a == null && agent.command == null && !known.includes(agent.id))
    .map(agent => `clawmatrix agents: "${agent.id}" is not an agent of this OpenClaw gateway, which has ${known.map(id => `"${id}"`).join(', ')}; ` +
      'hand-offs and messages to it will fail. Offer one of those, or add the agent to OpenClaw (a second agent needs ' +
      'agents.ownership: "explicit" and agents.defaults.systemAgent.agentId; see the README)')
}
