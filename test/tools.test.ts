import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import Type from 'typebox'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { builtinToolRegistry } from '../src/services/tools/builtin.js'
import { ToolExecutor, type ToolCall, type ToolOutcome } from '../src/services/tools/executor.js'
import { toolPolicyRefusal } from '../src/services/tools/policy.js'
import { processAlive, tempDir } from './fixtures/proto-harness.js'
import { waitFor } from './helpers/wait.js'
import type { ToolProxyConfig } from '../src/config/schema.js'

let dir: { path: string, remove(): Promise<void> }

beforeAll(async () => { dir = await tempDir('clawmatrix-tools-') })
afterAll(async () => { await dir?.remove() })

function executor (config: Partial<ToolProxyConfig> = {}, registry = builtinToolRegistry()): ToolExecutor {
  return new ToolExecutor({
    nodeId: 'tool-node',
    config: { enabled: true, allow: [], deny: [], maxOutputBytes: 1024 * 1024, workdir: dir.path, ...config },
    registry,
    hiddenEnv: ['PROTO_TEST_API_KEY']
  })
}

interface Run extends ToolOutcome { output: Record<string, string> }

/** Runs a call and collects its output per channel, as a caller would assemble it. */
async function run (ex: ToolExecutor, call: ToolCall, signal = AbortSignal.timeout(30_000), onOutput?: (channel: string, text: string) => void): Promise<Run> {
  const output: Record<string, string> = {}
  const outcome = await ex.execute(call, {
    signal,
    output: async (channel, text) => {
      output[channel] = (output[channel] ?? '') + text
      onOutput?.(channel, text)
    }
  })
  return { ...outcome, output }
}

describe('tool policy', () => {
  const base = { enabled: true, allow: [] as string[], deny: [] as string[] }

  it('refuses everything when the tool proxy is disabled, naming the node', () => {
    expect(toolPolicyRefusal({ ...base, enabled: false }, 'read', 'n1')).toEqual({ code: 'tool-disabled', message: 'tool proxy disabled on n1' })
  })

  it('allows all with [] or ["*"], lets deny win, and denies what allow does not list', () => {
    expect(toolPolicyRefusal(base, 'exec', 'n1')).toBeUndefined()
    expect(toolPolicyRefusal({ ...base, allow: ['*'] }, 'exec', 'n1')).toBeUndefined()
    expect(toolPolicyRefusal({ ...base, allow: ['*'], deny: ['exec'] }, 'exec', 'n1')?.message).toBe('tool "exec" denied by policy on n1 (toolProxy.deny)')
    expect(toolPolicyRefusal({ ...base, allow: ['exec'], deny: ['exec'] }, 'exec', 'n1')?.code).toBe('denied')
    expect(toolPolicyRefusal({ ...base, allow: ['read'] }, 'exec', 'n1')?.message).toBe('tool "exec" denied by policy on n1 (not in toolProxy.allow)')
    expect(toolPolicyRefusal({ ...base, deny: ['*'] }, 'read', 'n1')?.code).toBe('denied')
  })

  it('refuses an unknown tool by name, listing the tools there are, and bad parameters by field', async () => {
    const ex = executor()
    expect(ex.refusal({ tool: 'rm-rf', params: {} })).toEqual({ code: 'unknown-tool', message: 'unknown tool "rm-rf" on tool-node; it has edit, exec, read, write' })
    expect(ex.refusal({ tool: 'exec', params: {} })?.message).toBe('bad parameters for exec: missing command')
    expect(ex.refusal({ tool: 'read', params: { path: 'x', limit: 0 } })?.message).toBe('bad parameters for read: limit: expected >= 1')
    const denied = await run(executor({ deny: ['exec'] }), { tool: 'exec', params: { command: 'touch should-not-exist' } })
    expect(denied.status).toBe('error')
    expect(denied.error?.code).toBe('denied')
  })
})

describe('exec', () => {
  it('returns stdout, stderr and the exit code, in the tool directory, without the node\'s secrets', async () => {
    process.env.CLAWMATRIX_SECRET = 'must-not-leak-0123456789'
    process.env.PROTO_TEST_API_KEY = 'sk-must-not-leak'
    try {
      const result = await run(executor(), {
        tool: 'exec',
        params: { command: 'pwd; echo "secret=${CLAWMATRIX_SECRET:-unset} key=${PROTO_TEST_API_KEY:-unset} extra=$EXTRA"; echo oops >&2; exit 3', env: { EXTRA: 'yes' } }
      })
      expect(result.status).toBe('ok')
      expect(result.details?.exitCode).toBe(3)
      expect(result.output.stdout).toBe(`${dir.path}\nsecret=unset key=unset extra=yes\n`)
      expect(result.output.stderr).toBe('oops\n')
    } finally {
      delete process.env.CLAWMATRIX_SECRET
      delete process.env.PROTO_TEST_API_KEY
    }
  })

  it('streams output while the command still runs', async () => {
    const flag = join(dir.path, 'stream-flag')
    let seen = ''
    const running = run(executor(), {
      tool: 'exec',
      params: { command: `echo first; while [ ! -f ${flag} ]; do sleep 0.02; done; echo second` }
    }, AbortSignal.timeout(30_000), (_channel, text) => { seen += text })
    // The command only finishes after we saw its first line: streaming, not buffering to the end.
    await waitFor('the first line before the command ends', () => seen.includes('first'))
    await writeFile(flag, '')
    const result = await running
    expect(result.output.stdout).toBe('first\nsecond\n')
  })

  it('cuts output at maxOutputBytes with a visible marker and reports the original size', async () => {
    const result = await run(executor({ maxOutputBytes: 1000 }), { tool: 'exec', params: { command: 'head -c 100000 /dev/zero | tr "\\0" a; echo done >&2' } })
    expect(result.status).toBe('ok')
    expect(result.truncated).toEqual({ limitBytes: 1000, shownBytes: 1000, totalBytes: 100005 })
    expect(result.output.stdout).toBe('a'.repeat(1000) + '\n[output truncated by clawmatrix on tool-node: 1000 of 100005 bytes shown; toolProxy.maxOutputBytes is 1000]\n')
    expect(result.output.stderr).toBeUndefined()
  })

  it('never splits a character at the cap', async () => {
    const result = await run(executor({ maxOutputBytes: 5 }), { tool: 'exec', params: { command: 'printf "ééé"' } })
    expect(result.output.stdout?.startsWith('éé\n[output truncated')).toBe(true)
    expect(result.truncated?.shownBytes).toBe(4)
  })

  it('kills the whole process tree on cancellation', async () => {
    const work = join(dir.path, 'cancel')
    await mkdir(work)
    const controller = new AbortController()
    const running = run(executor(), {
      tool: 'exec',
      params: { command: 'sleep 600 & echo $! > bg.pid; echo $$ > sh.pid; echo ready; wait', workdir: 'cancel' }
    }, controller.signal, (_channel, text) => { if (text.includes('ready')) controller.abort() })
    const result = await running
    expect(result.status).toBe('cancelled')
    const pids = await Promise.all(['sh.pid', 'bg.pid'].map(async f => Number((await readFile(join(work, f), 'utf8')).trim())))
    await waitFor('the shell and its background sleep to be gone', () => pids.every(pid => !processAlive(pid)))
  })

  it('stops a command at its timeout', async () => {
    const work = join(dir.path, 'timeout')
    await mkdir(work)
    const result = await run(executor(), { tool: 'exec', params: { command: 'echo $$ > sh.pid; exec sleep 600', workdir: 'timeout' }, timeoutMs: 300 })
    expect(result.status).toBe('timeout')
    expect(result.error?.message).toBe('exec did not finish within 300 ms on tool-node and was stopped')
    const pid = Number((await readFile(join(work, 'sh.pid'), 'utf8')).trim())
    await waitFor('the timed-out command to be gone', () => !processAlive(pid))
  })

  it('names a working directory that does not exist', async () => {
    const result = await run(executor(), { tool: 'exec', params: { command: 'true', workdir: 'nowhere' } })
    expect(result.error).toEqual({ code: 'bad-workdir', message: `working directory ${join(dir.path, 'nowhere')} does not exist or is not a directory` })
  })
})

describe('read, write, edit', () => {
  it('writes a file, creating folders, and reads it back by line range with line endings kept', async () => {
    const written = await run(executor(), { tool: 'write', params: { path: 'a/b/c.txt', content: 'one\r\ntwo\nthree\nfour' } })
    expect(written.status).toBe('ok')
    expect(written.details).toEqual({ path: join(dir.path, 'a/b/c.txt'), bytes: 19 })
    expect(await readFile(join(dir.path, 'a/b/c.txt'), 'utf8')).toBe('one\r\ntwo\nthree\nfour')

    const all = await run(executor(), { tool: 'read', params: { path: 'a/b/c.txt' } })
    expect(all.output.content).toBe('one\r\ntwo\nthree\nfour')
    expect(all.details).toMatchObject({ firstLine: 1, lastLine: 4, totalLines: 4, more: false })

    const middle = await run(executor(), { tool: 'read', params: { path: join(dir.path, 'a/b/c.txt'), offset: 2, limit: 2 } })
    expect(middle.output.content).toBe('two\nthree\n')
    expect(middle.details).toMatchObject({ firstLine: 2, lastLine: 3, more: true })
  })

  it('reports a missing file by path', async () => {
    const result = await run(executor(), { tool: 'read', params: { path: 'missing.txt' } })
    expect(result.status).toBe('error')
    expect(result.error).toEqual({ code: 'not-found', message: `no such file or directory: ${join(dir.path, 'missing.txt')}` })
  })

  it('edits one exact occurrence, and refuses absent or ambiguous text without changing the file', async () => {
    const file = join(dir.path, 'edit.txt')
    await writeFile(file, 'alpha\nbeta\nbeta\ngamma\n')
    const absent = await run(executor(), { tool: 'edit', params: { path: 'edit.txt', oldText: 'delta', newText: 'x' } })
    expect(absent.error?.code).toBe('no-match')
    const ambiguous = await run(executor(), { tool: 'edit', params: { path: 'edit.txt', oldText: 'beta', newText: 'x' } })
    expect(ambiguous.error).toEqual({ code: 'ambiguous-match', message: `the old text occurs 2 times in ${file}; include more surrounding text so it occurs once. Nothing was changed` })
    expect(await readFile(file, 'utf8')).toBe('alpha\nbeta\nbeta\ngamma\n')
    const edited = await run(executor(), { tool: 'edit', params: { path: 'edit.txt', oldText: 'beta\ngamma', newText: 'BETA\nGAMMA' } })
    expect(edited.status).toBe('ok')
    expect(edited.details).toEqual({ path: file, line: 3 })
    expect(await readFile(file, 'utf8')).toBe('alpha\nbeta\nBETA\nGAMMA\n')
  })
})

describe('tool registry', () => {
  it('runs a registered extension tool under the same policy, and refuses duplicate names', async () => {
    const registry = builtinToolRegistry().register({
      name: 'gateway:web_search',
      description: 'forwarded to a gateway',
      parameters: Type.Object({ query: Type.String() }),
      async run (params, context) {
        await context.output('content', `results for ${params.query}`)
        return { details: { hits: 1 } }
      }
    })
    const result = await run(executor({}, registry), { tool: 'gateway:web_search', params: { query: 'libp2p' } })
    expect(result).toMatchObject({ status: 'ok', details: { hits: 1 }, output: { content: 'results for libp2p' } })
    expect(executor({ allow: ['exec'] }, registry).refusal({ tool: 'gateway:web_search', params: { query: 'x' } })?.code).toBe('denied')
    expect(() => registry.register({ name: 'exec', description: '', parameters: Type.Object({}), run: async () => ({}) })).toThrow('already registered')
  })
})
