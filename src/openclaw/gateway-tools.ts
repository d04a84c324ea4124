/**
 * The tool proxy reaches the gateway's own tools (web_search, other plugins'
 * tools ...) through the gateway's `POST /tools/invoke` on loopback, since
 * OpenClaw lets a plugin call no tool directly. exec / read / write / edit
 * stay clawmatrix's own (OpenClaw does not serve its coding tools there).
 */
import Type from 'typebox'
import { type ToolDefinition } from '../services/tools/tool.js'
import { ToolError } from '../services/errors.js'

/** Work tools of this plugin: forwarding them would let a call hop from node to node. */
const NOT_FORWARDED = /^cluster_(?!peers$)/

export const GATEWAY_TOOL_TIMEOUT_MS = 120_000

export interface GatewayToolsInit {
  /** The gateway's own port on loopback. */
  port: number
  /** The gateway's auth token, when it has one. */
  token?: string
}

/** Resolves a tool name to one that runs on the gateway, for ToolRegistry.setFallback. */
export function gatewayTools ({ port, token }: GatewayToolsInit): (name: string) => ToolDefinition<any> | undefined {
  return name => NOT_FORWARDED.test(name)
    ? undefined
    : {
        name,
        description: `the OpenClaw gateway's ${name} tool`,
        // The gateway checks the arguments against the tool's own schema.
        parameters: Type.Record(Type.String(), Type.Unknown()),
        timeoutMs: GATEWAY_TOOL_TIMEOUT_MS,
        async run (params, context) {
          let res: Response
          try {
            res = await fetch(`http://127.0.0.1:${port}/tools/invoke`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', ...(token == null ? {} : { authorization: `Bearer ${token}` }) },
              body: JSON.stringify({ tool: name, args: params }),
              signal: context.signal
            })
          } catch (err: any) {
            throw new ToolError('gateway-unreachable', `the OpenClaw gateway on port ${port} did not answer: ${err.cause?.code ?? err.message}`)
          }
          const body = await res.json().catch(() => undefined) as any
          if (!res.ok || body?.ok === false) {
            const message = body?.error?.message ?? `HTTP ${res.status}`
            throw new ToolError(res.status === 404 ? 'unknown-tool' : 'gateway-tool-failed', `${name} on the gateway: ${message}`)
          }
          const result = body?.result ?? body
          const text = (result?.content as Array<{ type: string, text?: string }> | undefined)
            ?.filter(part => part.type === 'text' && part.text != null).map(part => part.text).join('\n')
          await context.output('content', text ?? JSON.stringify(result))
          return { details: typeof result?.details === 'object' && result.details != null ? result.details : {} }
        }
      }
}
