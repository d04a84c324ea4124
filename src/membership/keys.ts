import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { InvalidCredentialError } from './errors.js'

/** How an authority's public key is written in configs, invites and status: `ed25519:<base64url of the 32 raw bytes>`. */
export const AUTHORITY_KEY_PREFIX = 'ed25519:'

export function generateAuthorityKey (): { privatePem: string, publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey: encodePublicKey(publicKey) }
}

export function encodePublicKey (key: KeyObject): string {
  return AUTHORITY_KEY_PREFIX + String(key.export({ format: 'jwk' }).x)
}

/** Parses `ed25519:<base64url>`; throws InvalidCredentialError with what was expected. */
export function parsePublicKey (text: string): KeyObject {
  const x = text.startsWith(AUTHORITY_KEY_PREFIX) ? text.slice(AUTHORITY_KEY_PREFIX.length) : ''
  if (!/^[A-Za-z0-9_-]{43}$/.test(x)) {
    throw new InvalidCredentialError(`not an authority public key; expected ${AUTHORITY_KEY_PREFIX} followed by 43 base64url characters`)
  }
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
}

export function parsePrivateKey (pem: string): KeyObject {
  return createPrivateKey(pem)
}

/**
 * Signs a payload under a domain label, so a signature made for one kind of
 * statement (a certificate) can never be replayed as another (a revocation).
 */
export function signStatement (key: KeyObject, label: string, fields: unknown[]): string {
  return sign(null, statementBytes(label, fields), key).toString('base64url')
}

export function verifyStatement (key: KeyObject, label: string, fields: unknown[], signature: string): boolean {
  try {
    return verify(null, statementBytes(label, fields), key, Buffer.from(signature, 'base64url'))
  } catch {
    return false
  }
}

function statementBytes (label: string, fields: unknown[]): Buffer {
  return Buffer.from(JSON.stringify([label, ...fields]))
}
