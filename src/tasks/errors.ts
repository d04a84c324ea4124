/**
 * How the task layer fails, one class per failure, matched by `name`. Both
 * carry a `code` that crosses the wire in a task's `rejected` frame or in the
 * local endpoint's error body (docs/tasks.md).
 */

/** A request the executor refuses; `code` goes on the wire as a `rejected` code. */
export class TaskRefusedError extends Error {
  constructor (readonly code: string, message: string) {
    super(message)
    this.name = 'TaskRefusedError'
  }
}

/** The task is not among this node's tasks. */
export class UnknownTaskError extends Error {
  readonly code = 'unknown-task'

  constructor (id: string, nodeId: string) {
    super(`no task ${id} was started from ${nodeId} (or it was pruned); \`clawmatrix tasks\` lists them`)
    this.name = 'UnknownTaskError'
  }
}
