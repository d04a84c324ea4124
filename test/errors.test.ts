import { describe, expect, it } from 'vitest'
import { CommandError, describeFailure, exitCodeOf, UsageError, WorkCallError } from '../src/cli/errors.js'
import { ConfigError } from '../src/config/errors.js'
import { BindError } from '../src/node/errors.js'
import { exposedError, MeshNotRunningError, ToolAuthorizationError, ToolInputError } from '../src/openclaw/errors.js'
import { HttpRequestError, httpStatusOf, NodeOfflineError, RemoteWorkError, SelfTargetError, UnknownTargetError } from '../src/services/errors.js'
import { NoCandidateAcceptedError, RefusedError, StreamCutError } from '../src/services/wire/errors.js'
import { UnknownTaskError } from '../src/tasks/errors.js'
import { runCliToEnd } from './helpers/cli.js'
import { freePort } from './helpers/ports.js'

// Each layer's errors are mapped once to an HTTP status, a tool error and an exit code, by `name`.
describe('the error mappings', () => {
  it('gives each error of any layer one HTTP status', () => {
    expect(httpStatusOf(new HttpRequestError(413, 'too large'))).toBe(413)
    expect(httpStatusOf(new SelfTargetError('office', 'office'))).toBe(400)
    expect(httpStatusOf(new UnknownTargetError('agent', 'nobody', 'the cluster has agents [main]'))).toBe(404)
    expect(httpStatusOf(new UnknownTaskError('t1', 'home'))).toBe(404)
    expect(httpStatusOf(new NodeOfflineError('office', 'office is offline'))).toBe(503)
    expect(httpStatusOf(new NoCandidateAcceptedError([]))).toBe(503)
    expect(httpStatusOf(new RefusedError('denied', 'tool "exec" denied by policy on office'))).toBe(403)
    expect(httpStatusOf(new RefusedError('busy', 'office is busy'))).toBe(503)
    expect(httpStatusOf(new RefusedError('not-owner', 'not yours'))).toBe(409)
    expect(httpStatusOf(new StreamCutError('office went away'))).toBe(502)
    expect(httpStatusOf('not an error')).toBe(502)
  })

  it('shows bad targets and refusals to a tool caller, and lets failures of the work pass', () => {
    const input = exposedError(new UnknownTargetError('node', 'nowhere', 'the cluster has nodes [hub]'))
    expect(input).toBeInstanceOf(ToolInputError)
    expect(input).toMatchObject({ message: 'unknown node "nowhere": the cluster has nodes [hub]', code: 'UNKNOWN_TARGET' })
    expect(exposedError(new MeshNotRunningError('the mesh is not running'))).toBeInstanceOf(ToolInputError)
    expect(exposedError(new RemoteWorkError('denied', 'tool "exec" denied by policy on hub (toolProxy.deny)', 'hub'))).toBeInstanceOf(ToolAuthorizationError)
    const everyoneBusy = new NoCandidateAcceptedError([{ peer: 'a', error: new RefusedError('busy', 'a is busy') }, { peer: 'b', error: new RefusedError('busy', 'b is busy') }])
    expect(exposedError(everyoneBusy)).toMatchObject({ name: 'ToolInputError', code: 'busy' })
    const oneUnreachable = new NoCandidateAcceptedError([{ peer: 'a', error: new RefusedError('busy', 'a is busy') }, { peer: 'b', error: new StreamCutError('b went away') }])
    expect(exposedError(oneUnreachable)).toBeUndefined()
    expect(exposedError(new RemoteWorkError('agent-failed', 'the agent failed', 'hub'))).toBeUndefined()
  })

  it('ends the CLI with one exit code per error, and a stack only for the unexplained', () => {
    expect(exitCodeOf(new UsageError('clawmatrix node needs --config <file.json>'))).toBe(2)
    expect(exitCodeOf(new WorkCallError('cancelled; the remote work was stopped', 130))).toBe(130)
    expect(exitCodeOf(new CommandError('cannot list peers'))).toBe(1)
    expect(exitCodeOf(new Error('a bug'))).toBe(1)
    expect(describeFailure(new ConfigError(['listenPort: expected a number']))).toBe('invalid clawmatrix config:\n  - listenPort: expected a number')
    expect(describeFailure(new BindError('cannot listen on 127.0.0.1:1 (listenPort): permission denied'))).not.toMatch(/\n\s+at /)
    expect(describeFailure(new Error('a bug'))).toMatch(/^Error: a bug\n\s+at /)
  })
})

describe('the CLI ends with the exit code its error maps to', { timeout: 120_000 }, () => {
  it('usage errors exit 2, a node that does not answer 1, both with their message and no stack', async () => {
    const noConfig = await runCliToEnd(['node'])
    expect(noConfig).toEqual({ code: 2, output: 'clawmatrix: clawmatrix node needs --config <file.json>\n' })
    const badFlag = await runCliToEnd(['peers', '--nope'])
    expect(badFlag.code).toBe(2)
    expect(badFlag.output).toMatch(/^clawmatrix: cannot list peers: Unknown option '--nope'/)
    const port = await freePort()
    const nobody = await runCliToEnd(['status', '--port', String(port)])
    expect(nobody.code).toBe(1)
    expect(nobody.output).toBe(`clawmatrix: no clawmatrix node answered at http://127.0.0.1:${port}/clawmatrix/status (ECONNREFUSED); is it running, and is --port its proxyPort?\n`)
  })
})
