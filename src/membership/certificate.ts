import Type, { type Static } from 'typebox'
import { Value } from 'typebox/value'
import { InvalidCredentialError } from './errors.js'
import { signStatement, verifyStatement } from './keys.js'
import type { KeyObject } from 'node:crypto'

/** Names and tags follow the config's node id pattern; anything else is refused before it is shown. */
const NodeId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' })
const PeerIdText = Type.String({ pattern: '^[1-9A-HJ-NP-Za-km-z]{40,64}$' })

/**
 * The authority's statement that `peerId` is the member named `nodeId`, with
 * `tags`, from `issuedAt` until `expiresAt` (epoch ms). A node's name and tags
 * in a managed cluster come from here, never from its card.
 */
export const CertificateSchema = Type.Object({
  v: Type.Literal(1),
  nodeId: NodeId,
  peerId: PeerIdText,
  tags: Type.Array(NodeId, { maxItems: 64 }),
  issuedAt: Type.Integer({ minimum: 0 }),
  expiresAt: Type.Integer({ minimum: 0 }),
  sig: Type.String({ maxLength: 128 })
}, { additionalProperties: false })

export type Certificate = Static<typeof CertificateSchema>

const CERTIFICATE_LABEL = 'clawmatrix/certificate/v1'

export function issueCertificate (authority: KeyObject, fields: Omit<Certificate, 'v' | 'sig'>): Certificate {
  const unsigned = { v: 1 as const, ...fields, tags: [...fields.tags] }
  return { ...unsigned, sig: signStatement(authority, CERTIFICATE_LABEL, certificateFields(unsigned)) }
}

/** Checks shape and signature (not expiry or revocation: the caller knows the time and the list). */
export function checkCertificate (authority: KeyObject, input: unknown): Certificate {
  if (!Value.Check(CertificateSchema, input)) {
    const first = Value.Errors(CertificateSchema, input)[0]
    throw new InvalidCredentialError(`malformed certificate (${first?.instancePath || '/'} ${first?.message ?? ''})`.trim())
  }
  if (!verifyStatement(authority, CERTIFICATE_LABEL, certificateFields(input), input.sig)) {
    throw new InvalidCredentialError(`the certificate for "${input.nodeId}" is not signed by this cluster's authority`)
  }
  return input
}

function certificateFields (c: Omit<Certificate, 'sig'>): unknown[] {
  return [c.nodeId, c.peerId, c.tags, c.issuedAt, c.expiresAt]
}

/**
 * The authority's statement that certificates are void: the one for `peerId`,
 * and/or every one for `nodeId` issued at or before `issuedBefore`. Revoking
 * by name that way leaves a later renewal valid.
 */
export const RevocationSchema = Type.Object({
  v: Type.Literal(1),
  peerId: Type.Optional(PeerIdText),
  nodeId: Type.Optional(NodeId),
  issuedBefore: Type.Optional(Type.Integer({ minimum: 0 })),
  revokedAt: Type.Integer({ minimum: 0 }),
  sig: Type.String({ maxLength: 128 })
}, { additionalProperties: false })

export type Revocation = Static<typeof RevocationSchema>

const REVOCATION_LABEL = 'clawmatrix/revocation/v1'

export function issueRevocation (authority: KeyObject, fields: Omit<Revocation, 'v' | 'sig'>): Revocation {
  const unsigned = { v: 1 as const, ...fields }
  return { ...unsigned, sig: signStatement(authority, REVOCATION_LABEL, revocationFields(unsigned)) }
}

export function checkRevocation (authority: KeyObject, input: unknown): Revocation {
  if (!Value.Check(RevocationSchema, input)) {
    throw new InvalidCredentialError('malformed revocation')
  }
  if (input.peerId == null && input.nodeId == null) {
    throw new InvalidCredentialError('a revocation names neither a peer id nor a node id')
  }
  if (!verifyStatement(authority, REVOCATION_LABEL, revocationFields(input), input.sig)) {
    throw new InvalidCredentialError('the revocation is not signed by this cluster\'s authority')
  }
  return input
}

function revocationFields (r: Omit<Revocation, 'sig'>): unknown[] {
  return [r.peerId ?? '', r.nodeId ?? '', r.issuedBefore ?? 0, r.revokedAt]
}

/** Whether `revocation` voids `certificate`. */
export function revokes (revocation: Revocation, certificate: Pick<Certificate, 'nodeId' | 'peerId' | 'issuedAt'>): boolean {
  if (revocation.peerId != null && revocation.peerId === certificate.peerId) return true
  return revocation.nodeId != null && revocation.nodeId === certificate.nodeId &&
    certificate.issuedAt <= (revocation.issuedBefore ?? revocation.revokedAt)
}

/** A revocation's stable identity, for de-duplication. */
export function revocationKey (r: Revocation): string {
  return r.sig
}
