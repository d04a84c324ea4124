/**
 * The audit log: every call a node executes for another node is appended to
 * <state-dir>/audit.jsonl with its caller, what ran and how it ended, and
 * nothing of the secret, message bodies or tasks.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { AuditLog, readAudit, type AuditEntry } from '../src/services/audit/audit-log.js'
import { nodeLogger } from '../src/node/logging.js'
import { runCliToEnd } from './helpers/cli.js'
import { SECRET, testNodes } from './helpers/nodes.js'
import { waitFor } from './helpers/wait.js'

const nodes = testNodes()
afterEach(async () => { await nodes.cleanup() })

const TASK = 'task-body-that-must-not-be-audited'
const MESSAGE = 'message-body-that-must-not-be-audited'

describe('audit log', () => {
  it('records every hand-off, message and tool call served, with caller, what, outcome, bytes and duration, and no secret or body', async () => {
    const worker = await nodes.start({
      nodeId: 'worker', listen: true,
      agents: [{ id: 'echo', command: [process.execPath, '-e', 'process.stdin.resume(); process.stdin.on("end", () => process.stdout.write("done"))'] }, { id: 'inbox' }],
      toolProxy: { enabled: true, deny: ['write'] }
    })
    const caller = await nodes.start({ nodeId: 'caller', peers: [{ nodeId: 'worker', url: worker.wsAddress() }] })
    await waitFor('the caller to reach the worker', () => caller.node.view.nodes().some(n => n.nodeId === 'worker' && n.reach === 'direct'))

    await writeFile(join(worker.stateDir, 'readme.txt'), 'hello')
    await caller.node.client.exec('worker', { command: 'echo audited' })
    await caller.node.client.read('worker', join(worker.stateDir, 'readme.txt'))
    await caller.node.client.send('inbox', MESSAGE)
    await caller.node.client.handoff('echo', TASK, undefined)
    await expect(caller.node.client.write('worker', join(worker.stateDir, 'x'), 'no')).rejects.toThrow(/denied/)

    const path = join(worker.stateDir, 'audit.jsonl')
    const entries = await waitFor('five audit lines', async () => {
      const { entries } = await readAudit(path)
      return entries.length >= 5 ? entries : undefined
    })
    const callerPeer = caller.node.peerId.toString()
    expect(entries.every(e => e.caller.name === 'caller' && e.caller.peerId === callerPeer)).toBe(true)
    expect(entries.every(e => e.durationMs >= 0 && e.bytes.in > 0 && Number.isFinite(Date.parse(e.time)))).toBe(true)
    const byWhat = (pick: (e: AuditEntry) => boolean): AuditEntry => entries.find(pick)!
    expect(byWhat(e => e.what.tool === 'exec')).toMatchObject({ kind: 'tool', what: { command: 'echo audited' }, outcome: 'ok' })
    expect(byWhat(e => e.what.tool === 'read')).toMatchObject({ kind: 'tool', what: { path: join(worker.stateDir, 'readme.txt') }, outcome: 'ok' })
    expect(byWhat(e => e.kind === 'message')).toMatchObject({ what: { agent: 'inbox' }, outcome: 'ok' })
    expect(byWhat(e => e.kind === 'handoff')).toMatchObject({ what: { agent: 'echo' }, outcome: 'ok' })
    expect(byWhat(e => e.what.tool === 'write')).toMatchObject({ outcome: 'refused', code: 'denied' })
    expect(byWhat(e => e.what.tool === 'exec').bytes.out).toBeGreaterThan(0)

    const text = await readFile(path, 'utf8')
    for (const secret of [SECRET, TASK, MESSAGE]) expect(text).not.toContain(secret)

    // The metrics count it.
    const metrics = await (await fetch(`${worker.node.http.url}/metrics`)).text()
    expect(metrics).toMatch(/clawmatrix_audited_calls_total\{kind="tool",outcome="ok"\} 2/)

    // The CLI shows it, from the state directory and from the running node.
    const fromDir = await runCliToEnd(['audit', '--state-dir', worker.stateDir])
    expect(fromDir.code, fromDir.output).toBe(0)
    expect(fromDir.output).toMatch(/caller \(\w+\) {2}exec "echo audited" {2}ok/)
    const fromNode = await runCliToEnd(['audit', '--port', new URL(worker.node.http.url).port, '--json'])
    expect(fromNode.output.trim().split('\n').map(line => JSON.parse(line).kind).sort()).toEqual(['handoff', 'message', 'tool', 'tool', 'tool'])
  }, 120_000)

  it('keeps the file bounded: past maxBytes it moves to audit.jsonl.1 and starts again', async () => {
    const { mkdtemp, rm, stat } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const dir = await mkdtemp(join(tmpdir(), 'clawmatrix-audit-'))
    try {
      const log = new AuditLog({ stateDir: dir, maxBytes: 2000, logger: nodeLogger('audit-test') })
      const entry: AuditEntry = { time: new Date().toISOString(), caller: { peerId: 'p' }, kind: 'tool', what: { tool: 'exec', command: 'x'.repeat(100) }, outcome: 'ok', bytes: { in: 1, out: 1 }, durationMs: 1 }
      for (let i = 0; i < 100; i++) log.record(entry)
      await log.flushed()
      expect((await stat(log.path)).size).toBeLessThanOrEqual(2000)
      expect((await stat(`${log.path}.1`)).size).toBeLessThanOrEqual(2000)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
