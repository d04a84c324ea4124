import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { Command } from 'commander'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { loadJoinedState, withJoinedState } from '../src/membership/index.js'
import { registerClawmatrixCli, type CommandLike } from '../src/openclaw/cli.js'
import { testNodes } from './helpers/nodes.js'

// `openclaw clawmatrix init|invite|join|revoke` as OpenClaw registers them on its Commander program, run
// without a gateway (they need none); the same verbs in a real gateway are test/interop's.
const nodes = testNodes()
let dir: string
const stateDirBefore = process.env.OPENCLAW_STATE_DIR
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clawmatrix-openclaw-verbs-'))
  process.env.OPENCLAW_STATE_DIR = join(dir, 'openclaw-state')
})
afterEach(async () => { await nodes.cleanup() })
afterAll(async () => {
  if (stateDirBefore == null) delete process.env.OPENCLAW_STATE_DIR
  else process.env.OPENCLAW_STATE_DIR = stateDirBefore
  await rm(dir, { recursive: true, force: true })
})

/** Runs `openclaw clawmatrix <args>` on a fresh program; returns what it printed and the exit code it set. */
async function openclaw (...args: string[]): Promise<{ stdout: string, stderr: string, exitCode: number }> {
  const program = new Command('openclaw').exitOverride()
  await registerClawmatrixCli(program as unknown as CommandLike)
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(chunk => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(chunk => { stderr += String(chunk); return true })
  const exitBefore = process.exitCode
  process.exitCode = undefined
  try {
    await program.parseAsync(['clawmatrix', ...args], { from: 'user' })
    return { stdout, stderr, exitCode: Number(process.exitCode ?? 0) }
  } finally {
    out.mockRestore()
    err.mockRestore()
    process.exitCode = exitBefore
  }
}

describe('openclaw clawmatrix init|invite|join|revoke', () => {
  it('are registered and work end to end without a gateway', async () => {
    const authorityDir = join(dir, 'authority')
    const init = await openclaw('init', '--authority-dir', authorityDir)
    expect(init.exitCode, init.stderr).toBe(0)
    const authority = init.stdout.match(/authority: (ed25519:[\w-]{43})/)![1]

    // invite's flags reach the certificate; the token alone is on stdout.
    const invite = await openclaw('invite', 'office', '--tags', 'ops,gpu', '--expires', '30d', '--authority-dir', authorityDir)
    expect(invite.exitCode, invite.stderr).toBe(0)
    expect(invite.stderr).toContain('invite for "office"')
    const token = invite.stdout.trim()
    expect(token).toMatch(/^clawmatrix-invite-v1\.[\w-]+$/)

    // join without --state-dir installs into <OpenClaw state dir>/clawmatrix, where the plugin's node reads it.
    const join_ = await openclaw('join', token)
    expect(join_.exitCode, join_.stderr).toBe(0)
    expect(join_.stdout).not.toContain(token)
    const stateDir = join(process.env.OPENCLAW_STATE_DIR!, 'clawmatrix')
    const state = await loadJoinedState(stateDir)
    expect(state?.certificate).toMatchObject({ nodeId: 'office', tags: ['ops', 'gpu'] })
    expect(state?.authority).toBe(authority)
    expect(state!.certificate.expiresAt - Date.now()).toBeLessThanOrEqual(30 * 86_400_000)

    // revoke hands the signed revocation to the running node at --port, which then refuses the peer.
    const laptop = await openclaw('invite', 'laptop', '--authority-dir', authorityDir)
    expect(laptop.exitCode, laptop.stderr).toBe(0)
    const laptopPeer = laptop.stderr.match(/peer id (12D3Koo\w+)/)![1]!
    const office = await nodes.start(withJoinedState({ proxyPort: 0 }, state!), stateDir)
    const port = new URL(office.node.http.url).port
    const revoke = await openclaw('revoke', 'laptop', '--authority-dir', authorityDir, '--port', port)
    expect(revoke.exitCode, revoke.stderr).toBe(0)
    expect(revoke.stdout).toContain(`revoked "laptop" (peer id ${laptopPeer})`)
    expect(office.node.membership!.refuses(peerIdFromString(laptopPeer))).toBe(true)
  })

  it('fail with a message and exit code 1, not a stack trace', async () => {
    const missing = join(dir, 'no-authority')
    const invite = await openclaw('invite', 'office', '--authority-dir', missing)
    expect(invite.exitCode).toBe(1)
    expect(invite.stderr).toBe(`clawmatrix: no cluster authority in ${missing} (ENOENT); create one with \`clawmatrix init --authority-dir ${missing}\`\n`)
    const join_ = await openclaw('join', 'clawmatrix-invite-v1.garbage', '--state-dir', join(dir, 'x'))
    expect(join_.exitCode).toBe(1)
    expect(join_.stderr).toMatch(/^clawmatrix: .*invite/)
  })
})
