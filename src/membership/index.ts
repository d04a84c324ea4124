/**
 * Managed membership: a cluster authority signs certificates that bind a
 * node's name, peer id, tags and expiry, and revocations that void them.
 * See docs/gate.md for the design and the threat model.
 */
export { Authority, defaultAuthorityDir, parseDuration, DEFAULT_CERTIFICATE_DAYS, type Invite, type InviteOptions } from './authority.js'
export { checkCertificate, checkRevocation, issueCertificate, issueRevocation, type Certificate, type Revocation } from './certificate.js'
export { InvalidCredentialError, MembershipSetupError, PeerRefusedError } from './errors.js'
export { decodeInvite, encodeInvite, joinInvite, loadJoinedState, withJoinedState, INVITE_PREFIX, MEMBERSHIP_FILE, type JoinedState } from './invite.js'
export { generateAuthorityKey, parsePublicKey } from './keys.js'
export { Membership, MEMBERSHIP_TOPIC, type MembershipInit, type MembershipEvents } from './membership.js'
export { RevocationList, REVOCATIONS_FILE } from './revocations.js'
