/**
 * Node hosts: clawmatrix nodes spread over child processes, so a bench of
 * 50 or 200 nodes is not one event loop. Each host is a forked Node.js
 * process (./node-host.ts) running several real ClawmatrixNodes from dist/,
 * driven over the IPC channel; the methods and their types are in
 * ./host-api.ts.
 *
 *   const hosts = await startHosts(5, { ...process.env, [SECRET_ENV]: secret })
 *   try {
 *     const started = await hosts[0].call('start', { nodes: [{ nodeId: 'a', listen: true, peers: [], intervalMs: 1000 }] })
 *     // ... hosts[i].call('waitConverged' | 'armWatch' | 'waitWatch' | 'processStats' | ..., params)
 *   } finally {
 *     await stopHosts(hosts)            // stops the nodes, then the processes
 *     assertNoOrphans(hosts)            // throws if any process of their groups is left
 *   }
 *
 * A managed node gets `invite: <token>` in its NodeSpec (and needs no secret
 * in the environment). Every host is the leader of its own process group:
 * `stop` ends the whole group, and so does this process's exit, a SIGINT or
 * a SIGTERM to it (a host also exits by itself when its IPC channel closes,
 * e.g. when this process is SIGKILLed). The nodes' state directories live in
 * a folder per host, removed when the host is gone.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { requireBuilt } from './paths.js'
import type { HostMethod, HostMethods, HostReply, HostRequest } from './host-api.js'

const HOST_SCRIPT = fileURLToPath(new URL('./node-host.js', import.meta.url))
const READY_TIMEOUT_MS = 30_000
const DEFAULT_CALL_TIMEOUT_MS = 120_000

/** The process groups of hosts not yet seen to exit, with their state folders: ended on this process's exit or a stopping signal. */
const liveGroups = new Map<number, string>()
let exitHooked = false

/**
 * `CLAWMATRIX_BENCH_CPU_PROF=<dir>`: every host runs under `--cpu-prof` and
 * writes `<dir>/<host name>.cpuprofile` when it exits (off by default: the
 * sampler costs a few percent of CPU). scripts/cpuprofile-summary.mjs reads them.
 */
function cpuProfileArgs (name: string): string[] {
  const dir = process.env.CLAWMATRIX_BENCH_CPU_PROF
  if (dir == null || dir === '') return []
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}.cpuprofile`]
}

function killGroup (pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // The group is gone already.
  }
}

/** Whether any process of a host's group still runs (a zombie child counts until reaped). */
export function groupAlive (pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch (err: any) {
    return err.code === 'EPERM'
  }
}

function endGroup (pgid: number): void {
  killGroup(pgid, 'SIGKILL')
  const dir = liveGroups.get(pgid)
  if (dir != null) rmSync(dir, { recursive: true, force: true })
  liveGroups.delete(pgid)
}

function hookExit (): void {
  if (exitHooked) return
  exitHooked = true
  process.once('exit', () => { for (const pgid of [...liveGroups.keys()]) endGroup(pgid) })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const pgid of [...liveGroups.keys()]) endGroup(pgid)
      // Die of the signal as if nothing had caught it.
      process.kill(process.pid, signal)
    })
  }
}

/**
 * A child process running ./node-host.ts: several clawmatrix nodes in one
 * Node.js process, driven over the IPC channel. Its stderr is kept (the
 * tail) for error messages.
 */
export class NodeHost {
  private nextId = 0
  private readonly pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()
  private output = ''
  private exited = false
  private readonly exit: Promise<void>

  private constructor (readonly name: string, private readonly child: ChildProcess) {
    child.stderr?.on('data', (chunk: Buffer) => { this.output = (this.output + String(chunk)).slice(-4_000) })
    child.on('message', (message: HostReply) => {
      const waiter = this.pending.get(message.id)
      if (waiter == null) return
      this.pending.delete(message.id)
      if (message.ok) waiter.resolve(message.result)
      else waiter.reject(new Error(`host ${name}: ${message.error}`))
    })
    const { promise, resolve } = Promise.withResolvers<void>()
    this.exit = promise
    child.on('exit', (code, signal) => {
      this.exited = true
      // Anything the host itself started goes with it, and so do its nodes' state directories.
      if (child.pid != null) endGroup(child.pid)
      resolve()
      for (const waiter of this.pending.values()) waiter.reject(new Error(`host ${name} exited (${signal ?? code}); output:\n${this.output}`))
      this.pending.clear()
    })
  }

  get pid (): number {
    return this.child.pid ?? -1
  }

  /** Forks a host on the running Node binary and waits until it has loaded the package. */
  static async start (name: string, env: NodeJS.ProcessEnv): Promise<NodeHost> {
    // --expose-gc: memory is read after a full GC. detached: a process group of its own, ended as one.
    hookExit()
    const dir = mkdtempSync(join(tmpdir(), `clawmatrix-bench-${name}-`))
    const child = fork(requireBuilt(HOST_SCRIPT), [], { execPath: process.execPath, execArgv: ['--expose-gc', ...cpuProfileArgs(name)], env: { ...env, CLAWMATRIX_BENCH_HOST_DIR: dir }, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], detached: true })
    if (child.pid == null) rmSync(dir, { recursive: true, force: true })
    else liveGroups.set(child.pid, dir)
    const host = new NodeHost(name, child)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`host ${name} not ready within ${READY_TIMEOUT_MS} ms; output:\n${host.output}`)) }, READY_TIMEOUT_MS)
      const onMessage = (message: { ready?: boolean }): void => {
        if (message.ready !== true) return
        clearTimeout(timer)
        child.off('message', onMessage)
        resolve()
      }
      child.on('message', onMessage)
      child.once('exit', code => {
        clearTimeout(timer)
        reject(new Error(`host ${name} exited (${code}) before it was ready; output:\n${host.output}`))
      })
    }).catch(err => {
      if (child.pid != null) endGroup(child.pid)
      throw err
    })
    return host
  }

  async call<M extends HostMethod> (method: M, params: HostMethods[M]['params'], timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<HostMethods[M]['result']> {
    if (this.exited) throw new Error(`host ${this.name} has exited; output:\n${this.output}`)
    const id = ++this.nextId
    const request: HostRequest<M> = { id, method, params }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`host ${this.name}: ${method} did not answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, {
        resolve: value => { clearTimeout(timer); resolve(value as HostMethods[M]['result']) },
        reject: err => { clearTimeout(timer); reject(err) }
      })
      this.child.send(request)
    })
  }

  /** Stops its nodes gracefully, then the process (its whole group, SIGKILL if it lingers). */
  async stop (): Promise<void> {
    if (this.exited) return
    await this.call('stopNodes', {}, 20_000).catch(() => {})
    if (this.child.connected) this.child.disconnect()
    // A host under --cpu-prof writes its profile on the way out: give it time.
    const timer = setTimeout(() => { endGroup(this.pid) }, cpuProfileArgs(this.name).length > 0 ? 60_000 : 5_000)
    await this.exit
    clearTimeout(timer)
  }
}

/** Starts `count` hosts at once. */
export async function startHosts (count: number, env: NodeJS.ProcessEnv, prefix = 'host'): Promise<NodeHost[]> {
  const started = await Promise.allSettled(Array.from({ length: count }, async (_, i) => NodeHost.start(`${prefix}-${i}`, env)))
  const hosts = started.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
  const failed = started.find(r => r.status === 'rejected')
  if (failed != null) {
    await stopHosts(hosts)
    throw failed.reason
  }
  return hosts
}

export async function stopHosts (hosts: Iterable<NodeHost>): Promise<void> {
  await Promise.allSettled([...hosts].map(async h => { await h.stop() }))
}

/** Throws, naming them, if any process of the hosts' groups still runs (after stopHosts). */
export function assertNoOrphans (hosts: Iterable<NodeHost>): void {
  const left = [...hosts].filter(h => groupAlive(h.pid))
  if (left.length > 0) throw new Error(`node host processes left running: ${left.map(h => `${h.name} (process group ${h.pid})`).join(', ')}`)
}
