import { describe, expect, it } from 'vitest'
import { CommandError, describeFailure, exitCodeOf, UsageError, WorkCallError } from '../src/cli/errors.js'
import { ConfigError } from '../src/config/errors.js'
import { BindError } from '../src/node/errors.js'
import { exposedError, MeshNotRunningError, ToolAuthorizationError, ToolInputError } from '../src/openclaw/errors.js'
import { HttpRequestError, httpErrorOf, httpStatusOf, NodeOfflineError, RemoteWorkError, SelfTargetError, UnknownTargetError } from '../src/services/errors.js'
import { NoCandidateAcceptedError, RefusedError, StreamCutError } from '../src/services/wire/errors.js'
import { UnknownTaskError } from '../src/tasks/errors.js'
import { UpstreamError } from '../src/services/models/errors.js'
import { asUpstreamError } from '../src/services/model-proxy/errors.js'
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
    expect(httpStatusOf(UpstreamError.of(429, 'rate_limit_error', 'slow down'))).toBe(429)
  })

  it('answers every local route, the model proxy included, with one OpenAI-style error body', () => {
    expect(httpErrorOf(new NodeOfflineError('office', 'office is offline'))).toEqual({
      status: 503, body: { error: { message: 'office is offline', type: 'server_error', param: null, code: 'NODE_OFFLINE' } }
    })
    expect(httpErrorOf(new HttpRequestError(413, 'the request body exceeds the limit of 10 bytes'))).toEqual({
      status: 413, body: { error: { message: 'the request body exceeds the limit of 10 bytes', type: 'invalid_request_error', param: null, code: 'request_too_large' } }
    })
    expect(httpErrorOf(new UnknownTaskError('t1', 'home')).body.error).toMatchObject({ type: 'not_found_error', code: 'unknown-task' })
    // An upstream's own answer passes as it came.
    const upstream = UpstreamError.of(400, 'invalid_request_error', 'messages: too long', { param: 'messages', code: 'context_length_exceeded' })
    expect(httpErrorOf(upstream)).toEqual({ status: 400, body: upstream.body })
    // The model proxy answers what the work routes would, as an UpstreamError its routes and the mesh carry.
    const offline = asUpstreamError(new NodeOfflineError('office', 'office is offline'))
    expect(offline).toBeInstanceOf(UpstreamError)
    expect({ status: offline.status, body: offline.body }).toEqual(httpErrorOf(new NodeOfflineError('office', 'office is offline')))
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
