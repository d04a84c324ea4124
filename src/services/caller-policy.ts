import type { Config } from '../config/schema.js'
import type { Certificate } from '../membership/index.js'
import type { Frame } from './wire/frame.js'
import type { Connection } from '@libp2p/interface'

/** A refusal sent back as the request's `rejected` frame. */
export interface PolicyRefusal {
  code: 'not-allowed'
  message: string
}

/** Decides, on the executing node, whether a request may run for its caller. */
export type RequestAdmission = (request: Frame, connection: Connection) => PolicyRefusal | undefined

/**
 * Per-caller policy of a managed cluster: `toolProxy.allowFrom`,
 * `agents[].allowFrom` and `models[].allowFrom` list node ids, `tags:<tag>`
 * or `*`, matched against the caller's certificate (never its card). A rule
 * left unset allows every member. Refusals name the rule that refused.
 */
export class CallerPolicy {
  constructor (
    private readonly config: Pick<Config, 'nodeId' | 'toolProxy' | 'agents' | 'models'>,
    private readonly certificates: { certificateOf(peerId: string): Certificate | undefined }
  ) {}

  /** Whether any rule is set: without one, nothing needs checking. */
  get active (): boolean {
    const { toolProxy, agents, models } = this.config
    return toolProxy.allowFrom != null || agents.some(a => a.allowFrom != null) || models.some(m => m.allowFrom != null)
  }

  readonly admit: RequestAdmission = (request, connection) => {
    const rule = this.ruleFor(request)
    if (rule == null) return undefined
    const caller = this.certificates.certificateOf(connection.remotePeer.toString())
    if (caller != null && allows(rule.allowFrom, caller)) return undefined
    const who = caller?.nodeId ?? `uncertified peer ${connection.remotePeer.toString()}`
    return {
      code: 'not-allowed',
      message: `${rule.what} on ${this.config.nodeId} refused for ${who} (${rule.field}: [${rule.allowFrom.join(', ')}])`
    }
  }

  private ruleFor (request: Frame): { what: string, field: string, allowFrom: string[] } | undefined {
    const { toolProxy, agents, models } = this.config
    switch (request.type) {
      case 'tool':
        return toolProxy.allowFrom == null ? undefined : { what: String(request.tool), field: 'toolProxy.allowFrom', allowFrom: toolProxy.allowFrom }
      case 'handoff':
      case 'task-submit':
      case 'send': {
        const agent = agents.find(a => a.id === request.agent)
        if (agent?.allowFrom == null) return undefined
        return { what: `${request.type === 'send' ? 'a message to' : request.type === 'task-submit' ? 'a task for' : 'a hand-off to'} ${agent.id}`, field: `agents[${agent.id}].allowFrom`, allowFrom: agent.allowFrom }
      }
      case 'model': {
        const model = models.find(m => m.id === request.model)
        if (model?.allowFrom == null) return undefined
        return { what: `model ${model.id}`, field: `models[${model.id}].allowFrom`, allowFrom: model.allowFrom }
      }
      default:
        return undefined
    }
  }
}

/** Whether an allowFrom list admits a certified caller. */
export function allows (allowFrom: string[], caller: Pick<Certificate, 'nodeId' | 'tags'>): boolean {
  return allowFrom.some(entry => entry === '*' || entry === caller.nodeId ||
    (entry.startsWith('tags:') && caller.tags.includes(entry.slice('tags:'.length))))
}
