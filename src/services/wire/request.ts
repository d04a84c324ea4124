import { Compile, type Validator } from 'typebox/compile'
import { Value } from 'typebox/value'
import { MalformedFrameError } from './errors.js'
import type { Frame } from './frame.js'
import type { Static, TSchema } from 'typebox'

/**
 * Checks a frame against its schema; the error names the first bad field,
 * e.g. `handoff frame: agent: expected string`. Unknown fields are allowed
 * (newer callers may add some), so schemas set no additionalProperties.
 */
export function checkFrame<S extends TSchema> (schema: S, frame: Frame, what: string): Static<S> {
  if (validator(schema).Check(frame)) return frame as Static<S>
  const problems: string[] = []
  for (const error of Value.Errors(schema, frame)) {
    const field = error.instancePath.split('/').slice(1).join('.')
    const params = error.params as Record<string, any>
    const message = error.keyword === 'required'
      ? `missing ${(params.requiredProperties as string[]).join(', ')}`
      : error.keyword === 'const'
        ? `expected ${JSON.stringify(params.allowedValue)}`
        : `expected ${error.message.replace(/^must (be )?/, '')}`
    problems.push(field === '' ? message : `${field}: ${message}`)
    if (problems.length === 3) break
  }
  throw new MalformedFrameError(`${what}: ${problems.join('; ')}`, 'bad-request')
}

/**
 * Each schema compiled once, on first use: `Value.Check` walks the schema
 * anew for every frame, a few percent of a node's CPU per model request.
 */
const validators = new WeakMap<TSchema, Validator<{}, TSchema>>()

function validator (schema: TSchema): Validator<{}, TSchema> {
  let compiled = validators.get(schema)
  if (compiled == null) {
    compiled = Compile(schema)
    validators.set(schema, compiled)
  }
  return compiled
}
