import type { Config } from '../config/schema.js'

/** OpenClaw's default gateway port; `openclaw --dev` uses 19001, clawmatrix's default proxyPort. */
export const OPENCLAW_DEFAULT_GATEWAY_PORT = 18789

/**
 * The port this gateway serves on, as OpenClaw resolves it: the
 * OPENCLAW_GATEWAY_PORT environment variable (set by `--dev` and `--port`),
 * then `gateway.port`, then the default. Undefined under a named profile
 * without either, where OpenClaw derives a port we do not guess.
 */
export function gatewayPortOf (openclawConfig: { gateway?: { port?: unknown } } | undefined, env: NodeJS.ProcessEnv): number | undefined {
  const fromEnv = env.OPENCLAW_GATEWAY_PORT?.trim().match(/^(?:.*:)?(\d+)$/)?.[1]
  if (fromEnv != null) return Number(fromEnv)
  const configured = openclawConfig?.gateway?.port
  if (typeof configured === 'number' && Number.isInteger(configured) && configured > 0) return configured
  const profile = env.OPENCLAW_PROFILE?.trim()
  return profile == null || profile === '' || profile === 'default' ? OPENCLAW_DEFAULT_GATEWAY_PORT : undefined
}

/** Refuses a config whose ports are the gateway's own, naming both settings. */
export function checkPortClash (config: Config, openclawConfig: { gateway?: { port?: unknown } } | undefined, env: NodeJS.ProcessEnv): void {
  const gatewayPort = gatewayPortOf(openclawConfig, env)
  if (gatewayPort == null) return
  const clashes: string[] = []
  if (config.proxyPort === gatewayPort) clashes.push(`proxyPort ${config.proxyPort}`)
  if (config.listen && config.listenPort === gatewayPort) clashes.push(`listenPort ${config.listenPort}`)
  if (clashes.length === 0) return
  throw new Error(`clawmatrix ${clashes.join(' and ')} is the port of this OpenClaw gateway (gateway.port / OPENCLAW_GATEWAY_PORT = ${gatewayPort}; ` +
    '`openclaw --dev` uses 19001, the default proxyPort); set a different port in plugins.entries.clawmatrix.config')
}
