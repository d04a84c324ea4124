import type { ToolProxyConfig } from '../../config/schema.js'

/** The refusal codes of a node's tool proxy policy: denied, not refused for load or state. */
export const POLICY_REFUSAL_CODES: ReadonlySet<string> = new Set(['tool-disabled', 'denied'])

export interface ToolRefusal {
  code: 'tool-disabled' | 'denied'
  message: string
}

/**
 * Whether toolProxy lets other nodes run `tool` here. Names match exactly;
 * "*" matches every tool. Deny wins over allow; an empty allow list, like
 * ["*"], allows every tool that is not denied.
 */
export function toolPolicyRefusal (config: Pick<ToolProxyConfig, 'enabled' | 'allow' | 'deny'>, tool: string, nodeId: string): ToolRefusal | undefined {
  if (!config.enabled) {
    return { code: 'tool-disabled', message: `tool proxy disabled on ${nodeId}` }
  }
  const matches = (list: string[]): boolean => list.includes('*') || list.includes(tool)
  if (matches(config.deny)) {
    return { code: 'denied', message: `tool "${tool}" denied by policy on ${nodeId} (toolProxy.deny)` }
  }
  if (config.allow.length > 0 && !matches(config.allow)) {
    return { code: 'denied', message: `tool "${tool}" denied by policy on ${nodeId} (not in toolProxy.allow)` }
  }
  return undefined
}
