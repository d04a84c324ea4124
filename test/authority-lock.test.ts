import { spawn } from 'node:child_process'
import { link, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Authority } from '../src/membership/authority.js'
import { withFileLock } from '../src/membership/file-lock.js'

const AUTHORITY = new URL('../dist/membership/authority.js', import.meta.url).href
const INVITES_EACH = 40
const TAKEOVER_PROCESSES = 4
const TAKEOVER_INVITES_EACH = 25

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'clawmatrix-authority-lock-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

/**
 * A child process on the built code that issues `count` invites named `<prefix>-<i>` from the authority in
 * `authorityDir`, once told to go on stdin (so both children invite at the same time, not one after the other).
 */
function inviteLoop (authorityDir: string, prefix: string, count: number): { ready: Promise<void>, go: () => void, done: Promise<{ code: number | null, output: string }> } {
  const script = `
    const { Authority } = await import(${JSON.stringify(AUTHORITY)})
    const authority = await Authority.open(${JSON.stringify(authorityDir)})
    process.stdout.write('ready\\n')
    await new Promise(resolve => process.stdin.once('data', resolve))
    process.stdin.destroy()
    for (let i = 0; i < ${count}; i++) {
      const { certificate } = await authority.invite({ nodeId: ${JSON.stringify(prefix)} + '-' + i })
      process.stdout.write('peer ' + certificate.peerId + '\\n')
    }`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  const ready = Promise.withResolvers<void>()
  child.stdout.on('data', chunk => { output += String(chunk); if (output.includes('ready')) ready.resolve() })
  child.stderr.on('data', chunk => { output += String(chunk) })
  const done = new Promise<{ code: number | null, output: string }>(resolve => child.once('close', code => { ready.resolve(); resolve({ code, output }) }))
  return { ready: ready.promise, go: () => { child.stdin.end('go\n') }, done }
}

describe('the authority\'s issued.json', () => {
  it('keeps every record when two processes invite at once', async () => {
    const authorityDir = join(dir, 'authority')
    await Authority.create(authorityDir)
    const children = [inviteLoop(authorityDir, 'left', INVITES_EACH), inviteLoop(authorityDir, 'right', INVITES_EACH)]
    await Promise.all(children.map(async c => c.ready))
    for (const child of children) child.go()
    const runs = await Promise.all(children.map(async c => c.done))
    for (const run of runs) expect(run.code, run.output).toBe(0)
    const issued: Array<{ nodeId: string }> = JSON.parse(await readFile(join(authorityDir, 'issued.json'), 'utf8'))
    const names = new Set(issued.map(r => r.nodeId))
    for (const side of ['left', 'right']) {
      for (let i = 0; i < INVITES_EACH; i++) expect(names, `${side}-${i}`).toContain(`${side}-${i}`)
    }
    expect(issued).toHaveLength(2 * INVITES_EACH)
  })

  it('takes over a lock whose holder died, and says who holds a live one', async () => {
    const file = join(dir, 'data.json')
    // A lock left by a process that no longer exists (pid 2^22 + 1 is above Linux's pid_max).
    await writeFile(`${file}.lock`, JSON.stringify({ pid: 4_194_305, since: Date.now() }))
    expect(await withFileLock(file, async () => 'done')).toBe('done')
    // A live holder (this process) keeps it; a second taker gives up with the holder named.
    await withFileLock(file, async () => {
      await expect(withFileLock(file, async () => 'never', { timeoutMs: 300 }))
        .rejects.toThrow(`${file} is locked by process ${process.pid}`)
    })
  })
})

describe('taking over a dead holder\'s lock', () => {
  it('lets exactly one of several processes take it over: no invite is lost or recorded twice', async () => {
    const authorityDir = join(dir, 'takeover')
    await Authority.create(authorityDir)
    const lock = join(authorityDir, 'issued.json.lock')
    const children = Array.from({ length: TAKEOVER_PROCESSES }, (_, i) => inviteLoop(authorityDir, `p${i}`, TAKEOVER_INVITES_EACH))
    await Promise.all(children.map(async c => c.ready))
    for (const child of children) child.go()
    let running = true
    const runs = Promise.all(children.map(async c => c.done)).finally(() => { running = false })
    // While they invite, the lock is left behind by a dead holder whenever it is free (as if a holder was killed
    // right after taking it), so the waiting processes race to take over the same dead lock again and again.
    let planted = 0
    while (running) {
      if (await plantDeadLock(lock, planted)) planted++
      await new Promise(resolve => setImmediate(resolve))
    }
    for (const run of await runs) expect(run.code, run.output).toBe(0)
    expect(planted).toBeGreaterThan(0)
    const issued: Array<{ nodeId: string, peerId: string }> = JSON.parse(await readFile(join(authorityDir, 'issued.json'), 'utf8'))
    const expected = children.flatMap((_, i) => Array.from({ length: TAKEOVER_INVITES_EACH }, (_, j) => `p${i}-${j}`))
    expect(issued.map(r => r.nodeId).sort()).toEqual(expected.sort())
    // Every certificate a process was handed is on record, once (a lost write would drop some, and keep others twice).
    const handed = (await runs).flatMap(run => [...run.output.matchAll(/^peer (\w+)$/gm)].map(m => m[1]))
    expect(handed).toHaveLength(expected.length)
    expect(new Set(issued.map(r => r.peerId))).toEqual(new Set(handed))
    expect(issued).toHaveLength(expected.length)
    // No draft or takeover claim is left behind (the last dead lock planted may be).
    expect((await readdir(authorityDir)).filter(f => f !== 'issued.json.lock').sort()).toEqual(['authority.json', 'authority.key', 'issued.json'])
  }, 150_000)
})

/** Leaves `lock` as a holder that died would (a pid that cannot exist), if nobody holds it now. */
async function plantDeadLock (lock: string, n: number): Promise<boolean> {
  const draft = `${lock}.planted`
  await writeFile(draft, JSON.stringify({ pid: 4_194_305, since: n }))
  try {
    await link(draft, lock)
    return true
  } catch (err: any) {
    if (err.code === 'EEXIST') return false
    throw err
  } finally {
    await rm(draft, { force: true })
  }
}
