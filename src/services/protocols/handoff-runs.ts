import type { ErrorInfo, RunStatus } from './messages.js'

export interface HandoffOutcome {
  status: RunStatus
  text: string
  error?: ErrorInfo
}

export interface HandoffRun {
  readonly id: string
  readonly agent: string
  readonly task: string
  /** Settles when the run ends; never rejects. */
  readonly done: Promise<HandoffOutcome>
  outcome?: HandoffOutcome
}

interface RunState extends HandoffRun {
  controller: AbortController
  watchers: Set<(message: string) => void>
  orphanTimer?: ReturnType<typeof setTimeout>
  finishedAt?: number
}

export interface HandoffRunsInit {
  orphanGraceMs: number
  resultTtlMs: number
  maxRemembered: number
}

export type RunExecutor = (signal: AbortSignal, onProgress: (message: string) => void) => Promise<HandoffOutcome>

/**
 * The hand-offs of one node by id, so an id never runs twice: a repeated
 * id attaches to the running hand-off or gets the remembered outcome. A
 * run every caller left without cancelling (lost connection) is cancelled
 * after a grace period, long enough for a retry to attach.
 */
export class HandoffRuns {
  private readonly runs = new Map<string, RunState>()
  private active = 0

  constructor (private readonly init: HandoffRunsInit) {}

  get (id: string): HandoffRun | undefined {
    return this.runs.get(id)
  }

  /** Hand-offs still running. */
  get running (): number {
    return this.active
  }

  start (id: string, agent: string, task: string, execute: RunExecutor): HandoffRun {
    this.forgetOld()
    const controller = new AbortController()
    const watchers = new Set<(message: string) => void>()
    const onProgress = (message: string): void => { for (const watcher of watchers) watcher(message) }
    this.active++
    const state: RunState = {
      id,
      agent,
      task,
      controller,
      watchers,
      done: execute(controller.signal, onProgress).catch((err: Error): HandoffOutcome => ({
        status: 'error', text: '', error: { code: 'internal', message: err.message }
      })).then(outcome => {
        state.outcome = outcome
        state.finishedAt = Date.now()
        clearTimeout(state.orphanTimer)
        this.active--
        return outcome
      })
    }
    this.runs.set(id, state)
    return state
  }

  /** Follows a run's progress; the returned function detaches. */
  attach (run: HandoffRun, onProgress: (message: string) => void): () => void {
    const state = run as RunState
    clearTimeout(state.orphanTimer)
    state.watchers.add(onProgress)
    return () => {
      state.watchers.delete(onProgress)
      if (state.watchers.size === 0 && state.outcome == null) {
        state.orphanTimer = setTimeout(() => { this.cancel(run, 'every caller went away') }, this.init.orphanGraceMs)
        state.orphanTimer.unref()
      }
    }
  }

  cancel (run: HandoffRun, reason: string): void {
    (run as RunState).controller.abort(new Error(reason))
  }

  /** Cancels everything still running (the node stops). */
  cancelAll (reason: string): void {
    for (const run of this.runs.values()) {
      if (run.outcome == null) this.cancel(run, reason)
    }
  }

  private forgetOld (): void {
    const now = Date.now()
    let remembered = 0
    for (const run of this.runs.values()) if (run.finishedAt != null) remembered++
    // Map order is start order: the oldest come first.
    for (const [id, run] of this.runs) {
      if (run.finishedAt == null) continue
      if (now - run.finishedAt > this.init.resultTtlMs || remembered >= this.init.maxRemembered) {
        this.runs.delete(id)
        remembered--
      }
    }
  }
}
