import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { PEER_KEY_FILE } from '../node/identity.js'
import { checkCertificate, type Certificate } from './certificate.js'
import { InvalidCredentialError, MembershipSetupError } from './errors.js'
import { parsePublicKey } from './keys.js'

/**
 * An invite token: everything a new node needs, in one string. The prefix
 * makes a leaked token easy to find with secret scanners.
 */
export const INVITE_PREFIX = 'clawmatrix-invite-v1.'
const MAX_TOKEN_CHARS = 16 * 1024

export interface InviteContents {
  /** The authority's public key, `ed25519:...`. */
  authority: string
  secret: string
  certificate: Certificate
  /** The node's peer key (libp2p protobuf), absent in a renewal: the node keeps its key. */
  peerKey?: Uint8Array
  bootstrap?: string
}

export function encodeInvite (contents: InviteContents): string {
  const json = { ...contents, peerKey: contents.peerKey == null ? undefined : Buffer.from(contents.peerKey).toString('base64url') }
  return INVITE_PREFIX + Buffer.from(JSON.stringify(json)).toString('base64url')
}

/** Decodes and verifies a token. Errors never repeat the token. */
export function decodeInvite (token: string): InviteContents {
  const text = token.trim()
  if (!text.startsWith(INVITE_PREFIX) || text.length > MAX_TOKEN_CHARS) {
    throw new InvalidCredentialError(`not a clawmatrix invite; expected a token starting with ${INVITE_PREFIX}, as printed by \`clawmatrix invite\``)
  }
  let json: any
  try {
    json = JSON.parse(Buffer.from(text.slice(INVITE_PREFIX.length), 'base64url').toString('utf8'))
  } catch {
    throw new InvalidCredentialError('the invite is damaged (not base64url JSON); copy it again in one piece')
  }
  if (typeof json?.authority !== 'string' || typeof json.secret !== 'string' || (json.bootstrap != null && typeof json.bootstrap !== 'string')) {
    throw new InvalidCredentialError('the invite is damaged (missing authority or secret)')
  }
  const certificate = checkCertificate(parsePublicKey(json.authority), json.certificate)
  const peerKey = typeof json.peerKey === 'string' ? new Uint8Array(Buffer.from(json.peerKey, 'base64url')) : undefined
  if (peerKey != null && peerIdFromPrivateKey(privateKeyFromProtobuf(peerKey)).toString() !== certificate.peerId) {
    throw new InvalidCredentialError('the invite is damaged (its key does not match its certificate)')
  }
  return { authority: json.authority, secret: json.secret, certificate, peerKey, bootstrap: json.bootstrap }
}

/** What `join` leaves in the state directory, beside the peer key. */
export const MEMBERSHIP_FILE = 'membership.json'

export interface JoinedState {
  authority: string
  secret: string
  certificate: Certificate
  bootstrap?: string
}

/**
 * Installs an invite in a state directory: the peer key (new nodes), then
 * the certificate, authority and secret. Joining again with a renewal for
 * the same key replaces the certificate; a running node picks it up.
 */
export async function joinInvite (token: string, stateDir: string): Promise<JoinedState> {
  const invite = decodeInvite(token)
  const { certificate } = invite
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  const keyFile = join(stateDir, PEER_KEY_FILE)
  const existing = await readFile(keyFile).then(bytes => peerIdFromPrivateKey(privateKeyFromProtobuf(bytes)).toString(), (err: any) => {
    if (err.code === 'ENOENT') return undefined
    throw new MembershipSetupError(`cannot read the peer key in ${stateDir}: ${err.message}`)
  })
  if (invite.peerKey == null) {
    if (existing !== certificate.peerId) {
      throw new MembershipSetupError(`this invite renews "${certificate.nodeId}" (peer id ${certificate.peerId}), but ${stateDir} holds ${existing == null ? 'no peer key' : `peer id ${existing}`}; join it in that node's state directory`)
    }
  } else if (existing != null && existing !== certificate.peerId) {
    throw new MembershipSetupError(`${stateDir} already holds another node's key (peer id ${existing}); join into a fresh --state-dir`)
  } else if (existing == null) {
    await writeFile(keyFile, privateKeyToProtobuf(privateKeyFromProtobuf(invite.peerKey)), { mode: 0o600, flag: 'wx' })
    await chmod(keyFile, 0o600)
  }
  const previous = await loadJoinedState(stateDir)
  if (previous != null && previous.authority !== invite.authority) {
    throw new MembershipSetupError(`${stateDir} was joined to another cluster (authority ${previous.authority}); join into a fresh --state-dir`)
  }
  const state: JoinedState = { authority: invite.authority, secret: invite.secret, certificate, bootstrap: invite.bootstrap ?? previous?.bootstrap }
  const file = join(stateDir, MEMBERSHIP_FILE)
  await writeFile(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 })
  await rename(`${file}.tmp`, file)
  return state
}

/** The joined state in a state directory, or undefined if the node never joined. */
export async function loadJoinedState (stateDir: string): Promise<JoinedState | undefined> {
  let text: string
  try {
    text = await readFile(join(stateDir, MEMBERSHIP_FILE), 'utf8')
  } catch (err: any) {
    if (err.code === 'ENOENT') return undefined
    throw new MembershipSetupError(`cannot read ${join(stateDir, MEMBERSHIP_FILE)}: ${err.message}`)
  }
  try {
    const json = JSON.parse(text)
    return { ...json, certificate: checkCertificate(parsePublicKey(json.authority), json.certificate) }
  } catch (err: any) {
    throw new MembershipSetupError(`${join(stateDir, MEMBERSHIP_FILE)} is damaged (${err.message}); join again with a new invite`)
  }
}

/**
 * Fills what a joined state provides into a config before it is validated:
 * the secret, the node id and the authority. A config that names them itself
 * must agree with the certificate.
 */
export function withJoinedState (input: Record<string, unknown>, state: JoinedState | undefined): Record<string, unknown> {
  if (state == null) return input
  const nodeId = input.nodeId ?? state.certificate.nodeId
  if (nodeId !== state.certificate.nodeId) {
    throw new MembershipSetupError(`nodeId: the config says "${String(nodeId)}" but this node's certificate names it "${state.certificate.nodeId}"; a managed node's name comes from its certificate (remove nodeId, or invite the node under that name)`)
  }
  if (input.authority != null && input.authority !== state.authority) {
    throw new MembershipSetupError(`authority: the config names ${String(input.authority)} but this node joined the cluster of ${state.authority}`)
  }
  const peers = Array.isArray(input.peers) ? input.peers : []
  const bootstrap = state.bootstrap != null && peers.length === 0 ? [{ nodeId: 'bootstrap', url: state.bootstrap }] : peers
  // A config that lists `secrets` (a rotation under way) replaces the joined secret rather than adding to it.
  const secret = input.secrets != null ? input.secret : input.secret ?? state.secret
  return { ...input, nodeId, ...(secret == null ? {} : { secret }), authority: state.authority, peers: bootstrap }
}
