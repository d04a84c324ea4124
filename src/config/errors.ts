/** How a config fails: one error that lists every problem found, each naming its field. */

/** A config that was refused; `problems` holds one line per bad field. */
export class ConfigError extends Error {
  readonly problems: string[]

  constructor (problems: string[], source?: string) {
    super(`invalid clawmatrix config${source == null ? '' : ` in ${source}`}:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}
