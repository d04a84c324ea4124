/**
 * The frames of `/clawmatrix/model/1.0.0` as TypeBox schemas: validation on
 * receipt, and the reference for docs/model-proxy.md. Unknown fields are
 * ignored so a later version can add optional ones.
 *
 *   caller -> host   model (wait: queue when full), then (only to stop early) cancel
 *   host -> caller   rejected                      (refused before the first byte: try the next host)
 *                  | answer, chunk*, end           (the whole answer)
 *                  | answer, chunk*, failed|error  (cut mid-answer)
 *                  with keepalive anywhere while the upstream is quiet
 *
 * On `/clawmatrix/model/1.1.0` the stream stays open after `rejected`,
 * `end` or `failed` for the caller's next request; `id` tells them apart.
 */
import Type, { type Static } from 'typebox'
import { MODEL_ROUTES } from '../models/upstream.js'
import type { OpenAIErrorBody as OpenAIErrorBodyType } from '../models/errors.js'

/** The OpenAI error body (`{ error: { message, type, ... } }`), as upstreams and clients know it. */
export const OpenAIErrorBody = Type.Object({
  error: Type.Object({
    message: Type.String(),
    type: Type.String(),
    param: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    code: Type.Optional(Type.Union([Type.String(), Type.Number(), Type.Null()]))
  })
})

const HttpStatus = Type.Integer({ minimum: 100, maximum: 599 })
const RequestId = Type.Integer({ minimum: 1 })

export const ModelRequestFrame = Type.Object({
  type: Type.Literal('model'),
  /** The model id as the host configures it (without the `clawmatrix/` prefix). */
  model: Type.String({ minLength: 1, maxLength: 256 }),
  route: Type.Enum([...MODEL_ROUTES]),
  /** The client's JSON body, passed to the upstream as is (its `model` is replaced there). */
  body: Type.Record(Type.String(), Type.Unknown()),
  /** At the model's maxConcurrent, wait in its queue when it has room instead of refusing as busy. */
  wait: Type.Optional(Type.Boolean()),
  /** The request's number on a reused stream (`/clawmatrix/model/1.1.0`); echoed in `answer`, `rejected`, `end` and `failed`. */
  id: Type.Optional(RequestId)
})
export type ModelRequestFrame = Static<typeof ModelRequestFrame>

/** Why a host refused before the first byte. */
export const REJECT_CODES = ['no-such-model', 'model-unavailable', 'busy', 'upstream-error'] as const
export type RejectCode = typeof REJECT_CODES[number]

/** The host's load for the model asked for, so callers can route around a full host. */
export const LoadField = Type.Object({
  running: Type.Integer({ minimum: 0 }),
  max: Type.Optional(Type.Integer({ minimum: 1 })),
  /** Requests waiting in the model's queue, and its size, when it queues. */
  queued: Type.Optional(Type.Integer({ minimum: 0 })),
  maxQueued: Type.Optional(Type.Integer({ minimum: 0 }))
})
export type LoadField = Static<typeof LoadField>

export const RejectedFrame = Type.Object({
  type: Type.Literal('rejected'),
  code: Type.String(),
  message: Type.String(),
  /** With code "upstream-error": the upstream's status and OpenAI-style body. */
  status: Type.Optional(HttpStatus),
  error: Type.Optional(OpenAIErrorBody),
  load: Type.Optional(LoadField),
  id: Type.Optional(RequestId)
})

/** The upstream started a successful answer; chunks follow. */
export const AnswerFrame = Type.Object({
  type: Type.Literal('answer'),
  status: HttpStatus,
  contentType: Type.String({ minLength: 1 }),
  load: Type.Optional(LoadField),
  id: Type.Optional(RequestId)
})

/** A piece of the answer body: whole SSE events for a stream, the JSON text otherwise. */
export const ChunkFrame = Type.Object({
  type: Type.Literal('chunk'),
  data: Type.String()
})

/** The answer is complete. Without it a stream that ends was cut, whatever the transport said. */
export const EndFrame = Type.Object({
  type: Type.Literal('end'),
  /** The upstream's token usage, when it said. */
  usage: Type.Optional(Type.Object({ input: Type.Integer({ minimum: 0 }), output: Type.Integer({ minimum: 0 }) })),
  id: Type.Optional(RequestId)
})

/** The upstream failed mid-answer; final. */
export const FailedFrame = Type.Object({
  type: Type.Literal('failed'),
  status: HttpStatus,
  error: OpenAIErrorBody,
  id: Type.Optional(RequestId)
})

/** A received error body in the shape UpstreamError holds (absent fields become null). */
export function errorBodyOf (body: Static<typeof OpenAIErrorBody>): OpenAIErrorBodyType {
  return { error: { ...body.error, param: body.error.param ?? null, code: body.error.code ?? null } }
}
