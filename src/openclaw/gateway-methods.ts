import type { MeshRuntime } from './runtime.js'

export const METHOD_STATUS = 'clawmatrix.status'
export const METHOD_MODELS = 'clawmatrix.models'

/** The gateway's reply callback: ok with a payload, or an error shape. */
export type Respond = (ok: boolean, payload?: unknown, error?: { code: string, message: string }) => void

export interface GatewayMethod {
  name: string
  handler: (options: { respond: Respond }) => Promise<void>
}

/**
 * Read-only gateway methods: how the CLI process (and any operator client)
 * sees the node that lives in the gateway process. The cluster code they
 * need is imported on the first call, not when the plugin registers.
 */
export function gatewayMethods (runtime: MeshRuntime): GatewayMethod[] {
  const answer = (produce: () => Promise<unknown> | unknown) => async ({ respond }: { respond: Respond }): Promise<void> => {
    try {
      respond(true, await produce())
    } catch (err: any) {
      respond(false, undefined, { code: 'UNAVAILABLE', message: err?.message ?? String(err) })
    }
  }
  return [
    { name: METHOD_STATUS, handler: answer(async () => runtime.requireNode().status()) },
    { name: METHOD_MODELS, handler: answer(async () => (await import('./models.js')).providerEntry(runtime.requireNode())) }
  ]
}
