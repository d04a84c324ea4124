/**
 * `--help` on every command. The CLI is spawned for the wiring (a few runs:
 * each loads the whole package); the per-command texts are checked against
 * the main usage in-process.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { COMMAND_HELP } from '../src/cli/help.js'
import { runCliToEnd } from './helpers/cli.js'

let usage: { code: number | null, output: string }
beforeAll(async () => { usage = await runCliToEnd(['--help']) }, 180_000)

describe('--help', { timeout: 180_000 }, () => {
  it('`clawmatrix --help` prints the usage and exits 0', () => {
    expect(usage.code).toBe(0)
    expect(usage.output).toMatch(/^clawmatrix \S+: /)
    expect(usage.output).toContain('clawmatrix <command> --help')
  })

  it('every command in the usage has help that explains each of its options', () => {
    const lines = [...usage.output.matchAll(/^ {2}clawmatrix ([a-z]+)(.*)$/gm)]
    expect(lines.length).toBeGreaterThanOrEqual(10)
    for (const [, command, rest] of lines) {
      const help = COMMAND_HELP[command!]
      expect(help, `help for ${command}`).toBeDefined()
      expect(help).toMatch(new RegExp(`^usage: clawmatrix ${command}\\b`))
      for (const [flag] of rest!.matchAll(/--[a-z-]+/g)) {
        expect(help, `${command} --help explains ${flag}`).toMatch(new RegExp(`^ {2}${flag}\\b.*\\S`, 'm'))
      }
    }
  })

  it('`<command> --help` and `-h` print it and exit 0, running nothing, whatever else is on the line', async () => {
    // Without --help this would start a relay (and fail for want of a secret).
    const relay = await runCliToEnd(['relay', '--listen-port', '0', '--help'], { CLAWMATRIX_SECRET: '' })
    expect(relay.code, relay.output).toBe(0)
    expect(relay.output).toBe(COMMAND_HELP.relay + '\n')
    const status = await runCliToEnd(['status', '-h'])
    expect(status.code, status.output).toBe(0)
    expect(status.output).toBe(COMMAND_HELP.status + '\n')
  })
})
