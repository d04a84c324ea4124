import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from './helpers/ports.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
let project: string

/**
 * The package as a user gets it: `npm pack` (of the dist the test run built),
 * unpacked as node_modules/clawmatrix of a fresh project, whose dependencies
 * are this checkout's (linked: no network), then imported by name.
 */
beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), 'clawmatrix-package-'))
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: root })
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }]
  const modules = join(project, 'node_modules')
  await mkdir(modules)
  await run('tar', ['xzf', join(project, filename), '-C', modules])
  await rename(join(modules, 'package'), join(modules, 'clawmatrix'))
  await symlink(await realpath(join(root, 'node_modules')), join(modules, 'clawmatrix', 'node_modules'))
}, 120_000)

afterAll(async () => {
  await rm(project, { recursive: true, force: true })
})

async function runInProject (code: string): Promise<string> {
  await writeFile(join(project, 'check.mjs'), code)
  const { stdout } = await run(process.execPath, ['check.mjs'], { cwd: project, timeout: 60_000 })
  return stdout.trim()
}

describe('the packed package', () => {
  it('ships the built entry points', async () => {
    const files = await readdir(join(project, 'node_modules', 'clawmatrix', 'dist'), { recursive: true })
    expect(files).toContain('index.js')
    expect(files).toContain(join('openclaw', 'index.js'))
    // The tests' fake upstreams (test/fixtures/fake-upstream) are not part of the product; the demo has its own model.
    expect(files.filter(file => /fake/i.test(file))).toEqual([])
    expect(files).toContain(join('cli', 'demo-model.js'))
  })

  it('starts and stops a node through the public API, imported by name', async () => {
    const [listenPort, proxyPort] = [await freePort(), await freePort()]
    const out = await runInProject(`
      import { mkdtemp } from 'node:fs/promises'
      import { tmpdir } from 'node:os'
      import { join } from 'node:path'
      import { attachA2A, attachTasks, createNode, parseConfig, VERSION, ConfigError } from 'clawmatrix'
      const config = parseConfig({ nodeId: 'packed', secret: 'packed-secret-0123456789abcdef', listen: true, listenHost: '127.0.0.1', listenPort: ${listenPort}, proxyPort: ${proxyPort}, agents: [{ id: 'echo', command: ['cat'] }] })
      const stateDir = await mkdtemp(join(tmpdir(), 'clawmatrix-packed-'))
      const node = await createNode({ config, stateDir, log: { info () {}, warn () {} } })
      attachA2A(node, attachTasks(node, stateDir))
      await node.start()
      const status = await (await fetch(node.http.url + '/clawmatrix/status')).json()
      const tasks = await (await fetch(node.http.url + '/clawmatrix/tasks')).json()
      const card = await (await fetch(node.http.url + '/a2a/echo/.well-known/agent-card.json')).json()
      await node.stop()
      let refused
      try { parseConfig({}) } catch (err) { refused = err.name }
      console.log(JSON.stringify({ nodeId: status.nodeId, version: VERSION === status.version, refused, isClass: typeof ConfigError, tasks: tasks.tasks, card: card.name }))
    `)
    // The task and A2A layers too, attached through the public API as `clawmatrix node` does.
    expect(JSON.parse(out)).toEqual({ nodeId: 'packed', version: true, refused: 'ConfigError', isClass: 'function', tasks: [], card: 'echo' })
  })

  it('exposes clawmatrix/openclaw as the plugin entry, and nothing else', async () => {
    const out = await runInProject(`
      const plugin = await import('clawmatrix/openclaw')
      const reachable = {}
      for (const path of ['clawmatrix/dist/index.js', 'clawmatrix/dist/services/clawmatrix-node.js', 'clawmatrix/package.json', 'clawmatrix/src/index.ts']) {
        try { await import(path); reachable[path] = true } catch (err) { reachable[path] = err.code }
      }
      console.log(JSON.stringify({ id: plugin.default.id, register: typeof plugin.default.register, reachable }))
    `)
    expect(JSON.parse(out)).toEqual({
      id: 'clawmatrix',
      register: 'function',
      reachable: {
        'clawmatrix/dist/index.js': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
        'clawmatrix/dist/services/clawmatrix-node.js': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
        'clawmatrix/package.json': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
        'clawmatrix/src/index.ts': 'ERR_PACKAGE_PATH_NOT_EXPORTED'
      }
    })
  })
})
