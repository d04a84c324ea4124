/** Names and limits of the task layer (docs/tasks.md). */

export const TASK_PROTOCOL_NAME = 'task'
export const TASK_PROTOCOL_VERSION = '1.0.0'

/** Where the records live under a node's state dir: `tasks/caller/`, `tasks/executor/`. */
export const TASKS_DIR = 'tasks'

/** Finished task records are kept this long (7 days)... */
export const TASK_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000
/** ...and at most this many per role (oldest finished ones go first). */
export const TASK_MAX_RECORDS = 1000
/** Progress reports kept per record; followers get every one as it comes. */
export const MAX_PROGRESS_KEPT = 50
/** A progress report is cut to this many characters. */
export const MAX_PROGRESS_CHARS = 2000
/** Tasks running at once on a node; more are refused with "busy". */
export const MAX_CONCURRENT_TASKS = 8
/** A task that names no timeout runs for at most an hour. */
export const TASK_TIMEOUT_MS = 60 * 60 * 1000
/** Earlier turns of a conversation passed to its agent (command agents), newest kept. */
export const MAX_HISTORY_TURNS = 40
/** Task and message text, and the stored context, are refused above this (UTF-8 bytes). */
export const MAX_TASK_TEXT_BYTES = 1024 * 1024
/** How often a caller retries reattaching to tasks whose executor is away (besides on its return). */
export const REATTACH_INTERVAL_MS = 30_000
