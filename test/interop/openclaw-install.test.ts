/**
 * clawmatrix installed as the README says, in a real OpenClaw gateway (the
 * pinned openclaw package; the built plugin, packed: `npm test` builds it
 * first). The README's "Using clawmatrix in OpenClaw" section is run as a
 * script: every `sh` block's commands, in order, in a fresh HOME (OpenClaw's
 * config and state under ~/.openclaw, as a user's), from a copy of the built
 * package. What the test does beyond the text: `npm ci` is skipped (the test
 * runs after it, in CI and here) and `npm pack` runs without scripts (dist/ is
 * built); port numbers in the commands are swapped for free ones; the gateway
 * already has its port and token in ~/.openclaw/openclaw.json (a user's
 * existing setup); `openclaw gateway run` runs in the background until
 * "ready", and the next block's commands run against it. `openclaw plugins
 * install` downloads the plugin's runtime dependencies from the npm registry.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { freePort, interopRoot, OPENCLAW_BIN, REPO, SECRET } from './helpers/gateway.js'

const STARTUP_MS = 480_000
/** A CLI call loads OpenClaw and the plugin anew: tens of seconds on a busy 2-core machine. */
const CLI_MS = 240_000

describe('the README\'s OpenClaw commands, as written', () => {
  let cleanup: () => Promise<void> = async () => {}
  let gatewayRun: ChildProcess | undefined

  afterAll(async () => {
    if (gatewayRun?.pid != null) {
      // The whole group (the shell and the gateway under it), until none of it is left, so nothing writes into the
      // folder being removed.
      const pid = gatewayRun.pid
      const group = (signal: NodeJS.Signals | 0): boolean => { try { process.kill(-pid, signal); return true } catch { return false } }
      group('SIGTERM')
      await waitFor('the README\'s gateway to stop', () => !group(0), { timeoutMs: 20_000 }).catch(async () => {
        group('SIGKILL')
        await waitFor('the README\'s gateway to be killed', () => !group(0), { timeoutMs: 10_000 })
      })
    }
    await cleanup()
  }, 60_000)

  it('pack, install the tarball, set the config, enable, run the gateway, status', async () => {
    const section = readmeSection(await readFile(join(REPO, 'README.md'), 'utf8'), '## Using clawmatrix in OpenClaw')
    const commands = shellCommands(section)
    expect(commands.map(c => c.split(' ').slice(0, 3).join(' '))).toEqual([
      'npm ci', 'npm pack', 'openclaw plugins install', 'openclaw config set', 'openclaw plugins enable', 'openclaw gateway run', 'openclaw clawmatrix status', 'openclaw config set'
    ])

    const tmp = await interopRoot()
    cleanup = tmp.cleanup
    const pkg = join(tmp.root, 'checkout')
    const home = join(tmp.root, 'home')
    const bin = join(tmp.root, 'bin')
    for (const dir of [pkg, join(home, '.openclaw'), bin, join(tmp.root, 'tmp')]) await mkdir(dir, { recursive: true })
    for (const file of ['package.json', 'README.md', 'openclaw.plugin.json']) await cp(join(REPO, file), join(pkg, file))
    for (const dir of ['dist', 'docs']) await cp(join(REPO, dir), join(pkg, dir), { recursive: true })
    // `openclaw` as installed: the pinned package on this test's Node 24
    await writeFile(join(bin, 'openclaw'), `#!/bin/sh\nexec "${process.execPath}" "${OPENCLAW_BIN}" "$@"\n`, { mode: 0o755 })
    const port = await freePort()
    const token = randomBytes(16).toString('hex')
    await writeFile(join(home, '.openclaw', 'openclaw.json'), JSON.stringify({ gateway: { mode: 'local', port, bind: 'loopback', auth: { mode: 'token', token } }, plugins: { entries: { 'memory-core': { enabled: false } } } }))
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, TMPDIR: join(tmp.root, 'tmp'), PATH: `${bin}:${dirname(process.execPath)}:${process.env.PATH}`, NO_COLOR: '1', CLAWMATRIX_SECRET: SECRET }
    for (const key of Object.keys(env)) if (/^(VITEST|OPENCLAW_|npm_)/.test(key)) delete env[key]
    delete env.NODE_ENV
    Object.assign(env, { OPENCLAW_DISABLE_BONJOUR: '1', OPENCLAW_NO_RESPAWN: '1', npm_config_ignore_scripts: 'true' })

    const transcript: string[] = []
    for (const written of commands) {
      if (written === 'npm ci') continue
      const command = await withFreePorts(written)
      if (command.startsWith('openclaw gateway run')) {
        // Its own process group: the README's line runs under `sh`, and stopping the shell alone would leave the gateway.
        gatewayRun = spawn('sh', ['-c', command], { cwd: pkg, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
        let output = ''
        gatewayRun.stdout!.on('data', chunk => { output += String(chunk) })
        gatewayRun.stderr!.on('data', chunk => { output += String(chunk) })
        await waitFor('the gateway the README starts to be ready with the clawmatrix node', () => {
          if (gatewayRun!.exitCode != null) throw new Error(`openclaw gateway run exited:\n${output}`)
          return /\bready\b/.test(output) && /clawmatrix node home started/.test(output)
        }, { timeoutMs: STARTUP_MS, intervalMs: 250 })
        continue
      }
      const result = await runShell(command, pkg, env, CLI_MS)
      transcript.push(`$ ${command}\n${result.stdout}${result.stderr}`)
      expect(result.code, transcript.join('\n')).toBe(0)
    }
    // the last commands' output: the status of the node the README configured
    expect(transcript.find(t => t.startsWith('$ openclaw clawmatrix status'))).toMatch(/home/)
  }, STARTUP_MS + 8 * CLI_MS)
})

/** The text of one `## ` section, up to the next. */
function readmeSection (readme: string, heading: string): string {
  const start = readme.indexOf(`\n${heading}\n`)
  if (start < 0) throw new Error(`README.md has no "${heading}" section`)
  const end = readme.indexOf('\n## ', start + heading.length + 2)
  return readme.slice(start, end < 0 ? undefined : end)
}

/** The commands of the section's ```sh blocks, in order, each without its trailing comment. */
function shellCommands (section: string): string[] {
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap(match => match[1]!.split('\n'))
    .map(line => line.replace(/\s+#.*$/, '').trim())
    .filter(line => line !== '' && !line.startsWith('#'))
}

/** The command with every port number in its JSON (`"proxyPort":19011`) swapped for a free port. */
async function withFreePorts (command: string): Promise<string> {
  let out = command
  for (const match of command.matchAll(/"(\w*[pP]ort)":(\d+)/g)) out = out.replace(match[0], `"${match[1]}":${await freePort()}`)
  return out
}

async function runShell (command: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn('sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', chunk => { stdout += String(chunk) })
  child.stderr!.on('data', chunk => { stderr += String(chunk) })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}
