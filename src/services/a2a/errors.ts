/**
 * How A2A fails, on both sides: the failures an inbound JSON-RPC request
 * meets (mapped to A2A's error codes in one place, `rpcErrorOf` in
 * ./json-rpc.ts) and an external A2A agent's answer that is an error or not
 * A2A at all. One class per failure, matched by `name`.
 */

/** tasks/get, tasks/cancel or a resumed message name a task this endpoint does not hold (-32001). */
export class TaskNotFoundError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TaskNotFoundError'
  }
}

/** The task already ended (-32002). */
export class TaskNotCancelableError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TaskNotCancelableError'
  }
}

/** A JSON-RPC method A2A does not define, or this endpoint does not offer (-32601). */
export class MethodNotFoundError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'MethodNotFoundError'
  }
}

/** Not a JSON-RPC 2.0 request (-32600). */
export class InvalidRequestError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'InvalidRequestError'
  }
}

/** An inbound value that is not what A2A allows; becomes JSON-RPC -32602 (invalid params). */
export class InvalidA2AMessageError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'InvalidA2AMessageError'
  }
}

/** The external agent answered with a JSON-RPC error, or not like an A2A agent at all. */
export class A2AAgentError extends Error {
  constructor (message: string, readonly code?: number) {
    super(message)
    this.name = 'A2AAgentError'
  }
}
