/**
 * Portkey's open-source AI gateway (@portkey-ai/gateway), a TypeScript
 * gateway picked for low overhead, as a side-by-side path in the model
 * proxy bench. Installed by the bench in a scratch folder outside the
 * repository (never in its node_modules), and started as its README says.
 *
 * 1.15.2 streams only with @hono/node-server 1.13.8 (newer ones hand it
 * immutable headers and every stream fails with `TypeError: immutable`),
 * pinned through npm `overrides`. It waits 25 ms before the first event of
 * every stream; a patched copy of its bundle without that wait shows its
 * real cost.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { spawnNodeUntilReady, type ReadyChild } from './child.js'

export const PORTKEY_VERSION = '1.15.2'
const HONO_NODE_SERVER = '1.13.8'

/** The scratch folder; kept between runs so the install happens once. */
export const PORTKEY_DIR = join(tmpdir(), `clawmatrix-bench-portkey-${PORTKEY_VERSION}`)

const FIRST_EVENT_WAIT = 'l?(l=!1,await new Promise((e=>setTimeout(e,25)))):'

/** Installs the gateway in PORTKEY_DIR unless it is there; returns the gateway's folder. */
export async function installPortkey (progress: (line: string) => void): Promise<string> {
  const gateway = join(PORTKEY_DIR, 'node_modules', '@portkey-ai', 'gateway')
  const installed = existsSync(join(gateway, 'package.json')) &&
    JSON.parse(await readFile(join(gateway, 'package.json'), 'utf8')).version === PORTKEY_VERSION
  if (!installed) {
    progress(`installing @portkey-ai/gateway ${PORTKEY_VERSION} in ${PORTKEY_DIR} (once)`)
    await mkdir(PORTKEY_DIR, { recursive: true })
    await writeFile(join(PORTKEY_DIR, 'package.json'), JSON.stringify({
      name: 'clawmatrix-bench-portkey',
      private: true,
      dependencies: { '@portkey-ai/gateway': PORTKEY_VERSION },
      overrides: { '@hono/node-server': HONO_NODE_SERVER }
    }, null, 2))
    await promisify(execFile)('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: PORTKEY_DIR, timeout: 600_000 })
  }
  // The same bundle without its 25 ms wait before a stream's first event.
  const bundle = await readFile(join(gateway, 'build', 'start-server.js'), 'utf8')
  if (!bundle.includes(FIRST_EVENT_WAIT)) throw new Error(`@portkey-ai/gateway ${PORTKEY_VERSION}: the first-event wait to patch out was not found`)
  await writeFile(join(gateway, 'build', 'start-server-no-wait.js'), bundle.replace(FIRST_EVENT_WAIT, 'l?(l=!1):'))
  return gateway
}

/** Starts the gateway (or its patched copy) headless on a free port. */
export async function startPortkey (gateway: string, withoutFirstEventWait: boolean): Promise<{ child: ReadyChild, url: string }> {
  const port = await freePort()
  const script = join(gateway, 'build', withoutFirstEventWait ? 'start-server-no-wait.js' : 'start-server.js')
  const child = await spawnNodeUntilReady([script, `--port=${port}`, '--headless'], { ready: /Ready for connections/, timeoutMs: 30_000 })
  return { child, url: `http://127.0.0.1:${port}/v1` }
}

/** The headers that make Portkey forward to an OpenAI-compatible upstream at `baseUrl` (ending in /v1). */
export function portkeyHeaders (baseUrl: string): Record<string, string> {
  return { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': baseUrl, authorization: 'Bearer unused' }
}

async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => { resolve(port) })
    })
  })
}

/** CPU time a process used so far, in ms (Linux /proc: utime + stime). */
export async function cpuMs (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is the state (field 3); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) * 1000 / CLOCK_TICKS
}

const CLOCK_TICKS = 100
