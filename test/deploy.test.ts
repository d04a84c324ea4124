/**
 * The deployment recipes of docs/deploy.md: the systemd unit passes
 * `systemd-analyze verify` (where the tool exists), and the command the unit
 * and the container run starts a relay that the container's health check
 * finds healthy and that stops cleanly on SIGTERM. No container engine is
 * assumed: the Dockerfile's sources must exist and its CMD and HEALTHCHECK
 * are run here as they are written, on this machine's Node.
 */
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from './helpers/cli.js'
import { SECRET } from './helpers/nodes.js'
import { freePort } from './helpers/ports.js'
import { waitFor } from './helpers/wait.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const UNIT = readFileSync(join(ROOT, 'deploy', 'clawmatrix-relay.service'), 'utf8')
const DOCKERFILE = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8')
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-deploy-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

/** The relay arguments after `main.js` in a command line, with its ports swapped for free ones. */
async function relayArgs (args: string[]): Promise<{ args: string[], proxyPort: number }> {
  const proxyPort = await freePort()
  const swapped = args.map((arg, i) => args[i - 1] === '--listen-port' ? '0' : args[i - 1] === '--proxy-port' ? String(proxyPort) : arg)
  return { args: [...swapped, '--listen-host', '127.0.0.1', '--state-dir', join(dir, `state-${proxyPort}`)], proxyPort }
}

describe('deployment recipes (docs/deploy.md)', { timeout: 180_000 }, () => {
  it.skipIf(!hasSystemdAnalyze)('the systemd unit passes systemd-analyze verify', async () => {
    const envFile = join(dir, 'relay.env')
    await writeFile(envFile, `CLAWMATRIX_SECRET=${SECRET}\n`, { mode: 0o600 })
    // The same unit, pointing at this checkout and this Node instead of /opt/clawmatrix and /usr/bin/node.
    const unit = join(dir, 'clawmatrix-relay.service')
    await writeFile(unit, UNIT.replace('/usr/bin/node', process.execPath).replaceAll('/opt/clawmatrix', ROOT.replace(/\/$/, '')).replace('/etc/clawmatrix/relay.env', envFile))
    const result = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' })
    const complaints = `${result.stdout}${result.stderr}`.split('\n').filter(line => line.includes('clawmatrix-relay.service'))
    expect(complaints, complaints.join('\n')).toEqual([])
    expect(result.status, result.stderr).toBe(0)
  })

  it('the Dockerfile copies only files that exist', () => {
    const sources = [...DOCKERFILE.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap(([, list]) => list!.split(/\s+/))
    expect(sources.length).toBeGreaterThan(3)
    for (const source of sources) expect(existsSync(join(ROOT, source)), `${source} exists`).toBe(true)
  })

  it('the command both run starts a relay the health check finds healthy, and SIGTERM stops it cleanly', async () => {
    const execStart = UNIT.match(/^ExecStart=(.+)$/m)![1]!.split(' ')
    const cmd = JSON.parse(DOCKERFILE.match(/^CMD (\[.+\])$/m)![1]!) as string[]
    // The unit and the image run the same relay command.
    expect(execStart.slice(execStart.findIndex(a => a.endsWith('main.js')) + 1)).toEqual(cmd.slice(2))
    const { args, proxyPort } = await relayArgs(cmd.slice(2))
    const relay = runCli(args, { CLAWMATRIX_SECRET: SECRET })
    try {
      await relay.waitForOutput(/clawmatrix node relay started/, 90_000)
      const health = JSON.parse(DOCKERFILE.match(/CMD (\["node", "-e", .+\])$/m)![1]!) as string[]
      const check = health.map(a => a.replace('19001', String(proxyPort)))
      await waitFor('the container health check to pass', async () =>
        (await promisify(execFile)(process.execPath, check.slice(1)).then(() => true, () => false)), { timeoutMs: 60_000 })
    } finally {
      relay.child.kill('SIGTERM')
    }
    expect(await relay.exited).toBe(0)
  })
})
