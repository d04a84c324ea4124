/**
 * Real OpenClaw gateways for interop tests: the pinned `openclaw` package
 * from node_modules, run on the test's own Node (process.execPath), each
 * loading this repo's built plugin and talking to a local fake OpenAI
 * upstream as its only LLM. Config, state, logs, HOME and TMPDIR live in the
 * gateway's temp folder (OpenClaw's lock files alone go to /tmp/openclaw-state-locks-<uid>,
 * a path it does not let us move).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FakeOpenAIServer } from '../../fixtures/fake-upstream/index.js'
import { freePort } from '../../helpers/ports.js'
import { waitFor } from '../../helpers/wait.js'

export { freePort }

export const REPO = fileURLToPath(new URL('../../../', import.meta.url))
export const OPENCLAW_BIN = join(REPO, 'node_modules', 'openclaw', 'openclaw.mjs')
export const FAKE_MODEL = 'fake-model'
/** The interop clusters' secret; the checks assert it shows in no output. */
export const SECRET = 'interop-secret-0123456789abcdef'

/**
 * A gateway's clawmatrix config: the interop secret, loopback, a free proxy
 * port and quick reconnects, under `extra`. The heartbeat stays the default
 * (15 s; expiry after 45 s): a loaded gateway's event loop stalls for seconds.
 */
export async function nodeConfig (nodeId: string, extra: Record<string, unknown>): Promise<Record<string, unknown>> {
  return { nodeId, secret: SECRET, listenHost: '127.0.0.1', proxyPort: await freePort(), reconnect: { minDelayMs: 100, maxDelayMs: 1000 }, ...extra }
}

/**
 * A copy of the built plugin (package.json, manifest, dist) with the repo's
 * node_modules linked in. OpenClaw snapshots a plugin's package while it
 * loads it and refuses one whose files change meanwhile; the copy keeps a
 * rebuild or an edit in the work tree from failing a test run.
 */
export async function preparePlugin (dir: string): Promise<string> {
  const root = join(dir, 'clawmatrix')
  await mkdir(root, { recursive: true })
  for (const file of ['package.json', 'openclaw.plugin.json']) {
    await cp(join(REPO, file), join(root, file))
  }
  await cp(join(REPO, 'dist'), join(root, 'dist'), { recursive: true })
  await symlink(join(REPO, 'node_modules'), join(root, 'node_modules'), 'dir')
  return root
}

/** A free TCP port on loopback (closed again before it is used: fine on a test machine). */
export interface GatewayInit {
  name: string
  /** plugins.entries.clawmatrix.config */
  clawmatrix: Record<string, unknown>
  pluginDir: string
  /** Further models.providers entries, beside the fake upstream's `fake`. */
  providers?: Record<string, unknown>
  /** The agents' default model; `fake/fake-model` otherwise. */
  model?: string
  /** Changes to the generated openclaw.json (e.g. a channel), applied last. */
  configure?: (config: Record<string, any>) => void
}

export interface CommandResult {
  code: number | null
  stdout: string
  stderr: string
}

export interface ToolInvokeResponse {
  httpStatus: number
  body: { ok: boolean, result?: { content: Array<{ type: string, text: string }>, details: any }, error?: { type: string, message: string } }
}

/** One `openclaw gateway run` child process with its own folder, port, token and fake LLM. */
export class Gateway {
  readonly name: string
  readonly dir: string
  readonly port: number
  readonly token: string
  readonly upstream: FakeOpenAIServer
  private child?: ChildProcess
  private output = ''
  private exited?: Promise<number | null>
  /** Milliseconds from spawn to the gateway's "ready" line. */
  startupMs = 0

  private constructor (name: string, dir: string, port: number, upstream: FakeOpenAIServer) {
    this.name = name
    this.dir = dir
    this.port = port
    this.token = randomBytes(16).toString('hex')
    this.upstream = upstream
  }

  static async create (init: GatewayInit, root: string): Promise<Gateway> {
    const dir = join(root, init.name)
    for (const sub of ['home', 'tmp', 'state', 'workspace']) await mkdir(join(dir, sub), { recursive: true })
    const upstream = new FakeOpenAIServer({ models: [FAKE_MODEL] })
    await upstream.start()
    const gateway = new Gateway(init.name, dir, await freePort(), upstream)
    await writeFile(join(dir, 'openclaw.json'), JSON.stringify(gateway.config(init), null, 2))
    return gateway
  }

  /** Environment for the gateway and for CLI calls against it. */
  get env (): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: join(this.dir, 'home'),
      TMPDIR: join(this.dir, 'tmp'),
      NO_COLOR: '1',
      FORCE_COLOR: '0'
    }
    // OpenClaw behaves differently under a test runner (no log output, among
    // others): these gateways must run as they would in production.
    for (const key of Object.keys(env)) {
      if (/^(VITEST|OPENCLAW_)/.test(key)) delete env[key]
    }
    delete env.NODE_ENV
    delete env.TEST
    delete env.CLAWMATRIX_SECRET
    env.OPENCLAW_CONFIG_PATH = join(this.dir, 'openclaw.json')
    env.OPENCLAW_STATE_DIR = join(this.dir, 'state')
    // OpenClaw's own switches for a gateway embedded in another program:
    // no LAN advertising, no detached respawn, no login-shell snapshot
    Object.assign(env, { OPENCLAW_DISABLE_BONJOUR: '1', OPENCLAW_NO_RESPAWN: '1', OPENCLAW_EXEC_SHELL_SNAPSHOT: '0', OPENCLAW_SKIP_CANVAS_HOST: '1', OPENCLAW_SKIP_GMAIL_WATCHER: '1' })
    return env
  }

  get logFile (): string {
    return join(this.dir, 'openclaw.log')
  }

  /** The gateway's stdout and stderr, every launch appended. */
  get consoleFile (): string {
    return join(this.dir, 'console.log')
  }

  /**
   * Starts `openclaw gateway run` and waits until the gateway is ready and
   * the clawmatrix node has started. OpenClaw gives parts of its startup
   * fixed deadlines (5 s for its state lease); on a loaded machine one can
   * pass and the gateway exits, so an exit during startup is retried.
   */
  async start (timeoutMs = 120_000, attempts = 3): Promise<void> {
    const started = Date.now()
    let failures = ''
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.launch(Math.max(1_000, started + timeoutMs - Date.now()))
      if (outcome === 'ready') {
        this.startupMs = Date.now() - started
        return
      }
      failures += `--- ${this.name}, attempt ${attempt}: ${outcome} ---\n${this.output}\n`
      if (outcome !== 'exited' || attempt >= attempts || Date.now() - started >= timeoutMs) {
        await this.stop()
        throw new Error(`gateway ${this.name} did not become ready within ${timeoutMs} ms\n${failures}`)
      }
    }
  }

  private async launch (timeoutMs: number): Promise<'ready' | 'exited' | 'timed out'> {
    this.output = ''
    const child = spawn(process.execPath, [OPENCLAW_BIN, 'gateway', 'run'], { cwd: this.dir, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    // also on disk, beside OpenClaw's own log, to read after a failure (CLAWMATRIX_KEEP_INTEROP)
    const file = createWriteStream(this.consoleFile, { flags: 'a' })
    child.stdout!.on('data', chunk => { this.output += String(chunk); file.write(chunk) })
    child.stderr!.on('data', chunk => { this.output += String(chunk); file.write(chunk) })
    this.exited = new Promise(resolve => child.once('exit', code => { file.end(); resolve(code) }))
    return waitFor(`gateway ${this.name} to be ready`, () => {
      if (child.exitCode != null || child.signalCode != null) return 'exited' as const
      return /\bready\b/.test(this.output) && /clawmatrix node \S+ started/.test(this.output) ? 'ready' as const : undefined
    }, { timeoutMs, intervalMs: 100 }).catch(() => 'timed out' as const)
  }

  /** The gateway's console output so far. */
  get console (): string {
    return this.output
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop (graceMs = 20_000): Promise<void> {
    const child = this.child
    if (child == null || child.exitCode != null || child.signalCode != null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    await this.exited
    clearTimeout(timer)
  }

  /** Sends SIGTERM and returns at once: the gateway drains (up to minutes) before it exits. */
  terminate (): void {
    this.child?.kill('SIGTERM')
  }

  /** Rewrites `plugins.entries.clawmatrix.config` in the gateway's config file: OpenClaw hot-reloads it. */
  async setClawmatrixConfig (config: Record<string, unknown>): Promise<void> {
    const path = join(this.dir, 'openclaw.json')
    const whole = JSON.parse(await readFile(path, 'utf8'))
    whole.plugins.entries.clawmatrix.config = config
    await writeFile(path, JSON.stringify(whole, null, 2))
  }

  async close (): Promise<void> {
    await this.stop()
    await this.upstream.stop()
  }

  /** `POST /tools/invoke` on the gateway's HTTP port, authenticated with its token; a tool that waits for work gets a longer `timeoutMs`. */
  async invokeTool (tool: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<ToolInvokeResponse> {
    const res = await fetch(`http://127.0.0.1:${this.port}/tools/invoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tool, args }),
      signal: AbortSignal.timeout(timeoutMs)
    })
    return { httpStatus: res.status, body: await res.json() as ToolInvokeResponse['body'] }
  }

  /** Runs the `openclaw` CLI against this gateway's config and state. */
  async cli (args: string[], timeoutMs = 90_000): Promise<CommandResult> {
    return runOpenclaw(args, this.env, this.dir, timeoutMs)
  }

  /** OpenClaw's log file, one JSON object per line; the clawmatrix lines come from the `plugins` subsystem. */
  async logLines (): Promise<string[]> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '')
    return text.split('\n').filter(Boolean).map(line => {
      try {
        return String(JSON.parse(line).message ?? line)
      } catch {
        return line
      }
    })
  }

  private config (init: GatewayInit): Record<string, unknown> {
    const base: Record<string, any> = {
      gateway: { mode: 'local', port: this.port, bind: 'loopback', auth: { mode: 'token', token: this.token } },
      logging: { file: this.logFile },
      agents: { defaults: { model: init.model ?? `fake/${FAKE_MODEL}`, workspace: join(this.dir, 'workspace') } },
      models: {
        providers: {
          fake: { baseUrl: this.upstream.url, apiKey: 'fake-upstream-key', api: 'openai-completions', models: [{ id: FAKE_MODEL, name: 'Fake model' }] },
          ...init.providers
        }
      },
      plugins: {
        load: { paths: [init.pluginDir] },
        allow: ['clawmatrix'],
        // memory-core is on by default; these gateways need no memory, and start faster without it
        entries: { clawmatrix: { enabled: true, config: init.clawmatrix }, 'memory-core': { enabled: false } }
      }
    }
    init.configure?.(base)
    return base
  }
}

/** `node openclaw.mjs ...` on the test's Node, to completion. */
export async function runOpenclaw (args: string[], env: NodeJS.ProcessEnv, cwd: string, timeoutMs = 90_000): Promise<CommandResult> {
  const child = spawn(process.execPath, [OPENCLAW_BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', chunk => { stdout += String(chunk) })
  child.stderr!.on('data', chunk => { stderr += String(chunk) })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/**
 * A temp folder for one test file's gateways, removed by `cleanup` unless
 * CLAWMATRIX_KEEP_INTEROP is set (to read the gateways' logs after a failure).
 */
export async function interopRoot (): Promise<{ root: string, cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'clawmatrix-interop-'))
  return {
    root,
    cleanup: async () => {
      if (process.env.CLAWMATRIX_KEEP_INTEROP != null) {
        console.info(`interop gateways' folders kept in ${root}`)
        return
      }
      await rm(root, { recursive: true, force: true })
    }
  }
}
