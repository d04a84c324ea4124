/**
 * JSON-RPC 2.0 envelopes and the error codes A2A assigns (A2A 1.0, section
 * "JSON-RPC error codes"). One class per failure; the dispatcher maps them
 * to codes in one place (`rpcErrorOf`).
 */
import { InvalidA2AMessageError, InvalidRequestError } from './errors.js'

export const JSON_RPC_ERRORS = {
  parse: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  taskNotFound: -32001,
  taskNotCancelable: -32002,
  unsupportedOperation: -32004
} as const

export type JsonRpcId = string | number | null

export interface JsonRpcRequest { jsonrpc: '2.0', id: JsonRpcId, method: string, params: Record<string, unknown> }

export interface JsonRpcError { code: number, message: string, data?: unknown }

export type JsonRpcResponse =
  | { jsonrpc: '2.0', id: JsonRpcId, result: unknown }
  | { jsonrpc: '2.0', id: JsonRpcId, error: JsonRpcError }

/** The JSON-RPC error for a thrown value; anything unexpected is -32603 with its message. */
export function rpcErrorOf (err: any): JsonRpcError {
  switch (err?.name) {
    case 'InvalidRequestError': return { code: JSON_RPC_ERRORS.invalidRequest, message: err.message }
    case 'MethodNotFoundError': return { code: JSON_RPC_ERRORS.methodNotFound, message: err.message }
    case InvalidA2AMessageError.name: return { code: JSON_RPC_ERRORS.invalidParams, message: err.message }
    // An unknown agent is a bad parameter of the request; an unknown task is A2A's own code.
    case 'UnknownTargetError': return { code: JSON_RPC_ERRORS.invalidParams, message: err.message }
    case 'TaskNotFoundError':
    case 'UnknownTaskError': return { code: JSON_RPC_ERRORS.taskNotFound, message: err.message }
    case 'TaskNotCancelableError': return { code: JSON_RPC_ERRORS.taskNotCancelable, message: err.message }
    default: return { code: JSON_RPC_ERRORS.internal, message: String(err?.message ?? err) }
  }
}

/** Checks the envelope of one request (batches are not accepted: A2A has no use for them). */
export function checkRequest (body: unknown): JsonRpcRequest {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidRequestError('expected one JSON-RPC 2.0 request object')
  const request = body as Record<string, unknown>
  if (request.jsonrpc !== '2.0') throw new InvalidRequestError('jsonrpc: expected "2.0"')
  if (typeof request.method !== 'string' || request.method === '') throw new InvalidRequestError('method: expected a string')
  const id = request.id
  if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') throw new InvalidRequestError('id: expected a string, a number or null')
  const params = request.params ?? {}
  if (typeof params !== 'object' || Array.isArray(params)) throw new InvalidRequestError('params: expected an object')
  return { jsonrpc: '2.0', id: id ?? null, method: request.method, params: params as Record<string, unknown> }
}

export function rpcResult (id: JsonRpcId, result: unknown): JsonRpcResponse {
  return { jsonrpc: '2.0', id, result }
}

export function rpcError (id: JsonRpcId, error: JsonRpcError): JsonRpcResponse {
  return { jsonrpc: '2.0', id, error }
}
