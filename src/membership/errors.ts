/**
 * One error class per way membership refuses something, matched by `name`.
 * Messages name nodes and say why; they never hold a token, key or secret.
 */

/** A certificate, revocation or invite is malformed or not signed by this cluster's authority. */
export class InvalidCredentialError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidCredentialError'
  }
}

/** A peer was refused at the gate: no valid certificate, expired, revoked, or its name is held by a newer certificate. */
export class PeerRefusedError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'PeerRefusedError'
  }
}

/** The local authority directory or joined state is missing or unusable. */
export class MembershipSetupError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'MembershipSetupError'
  }
}
