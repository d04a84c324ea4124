import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { TypedEventEmitter } from 'main-event'
import { MAX_CREDENTIAL_BYTES, type Admission } from '../node/admission.js'
import { checkCertificate, type Certificate, type Revocation } from './certificate.js'
import { MembershipSetupError, PeerRefusedError } from './errors.js'
import { loadJoinedState, MEMBERSHIP_FILE } from './invite.js'
import { parsePublicKey } from './keys.js'
import { RevocationList } from './revocations.js'
import type { Swarm } from '../node/swarm.js'
import type { ComponentLogger, Logger, PeerId, Startable } from '@libp2p/interface'
import type { KeyObject } from 'node:crypto'

/** Revocations travel on this topic; every receiver verifies the authority's signature. */
export const MEMBERSHIP_TOPIC = '/clawmatrix/membership/1.0.0'

export interface MembershipInit {
  /** The authority's public key, `ed25519:...`, from the config or the joined state. */
  authority: string
  /** This node's own certificate. */
  certificate: Certificate
  /** Holds membership.json (re-read for renewals) and revocations.json. */
  stateDir: string
  /**
   * How often connected peers' certificates are checked for expiry and this
   * node's certificate file for a renewal.
   * @default 15000
   */
  checkIntervalMs?: number
  /** The node's logger (../node/logging.ts `nodeLogger`), so every line says which node it is. */
  logger: ComponentLogger
}

export interface MembershipEvents {
  /** A peer's certificate was revoked, expired or superseded: its connections are closed and its card must go. */
  'peer:refused': CustomEvent<{ peerId: string, nodeId?: string, reason: string }>
  /** This node's certificate was renewed on disk and is now presented. */
  'certificate:renewed': CustomEvent<Certificate>
}

interface Credential {
  certificate: unknown
  revocations?: unknown[]
}

/**
 * A managed cluster's membership on one node: this node's certificate, the
 * certificates of the peers it admitted or saw in cards, and the revocations
 * it knows. It is the gate's admission (../node/admission.ts), and the one
 * place a peer's certified name and tags are looked up.
 */
export class Membership extends TypedEventEmitter<MembershipEvents> implements Admission, Startable {
  private readonly log: Logger
  private readonly authorityKey: KeyObject
  private readonly revocations: RevocationList
  /** Every valid certificate known, by peer id. */
  private readonly certificates = new Map<string, Certificate>()
  /** The newest valid certificate for each name: a name has one holder. */
  private readonly holders = new Map<string, Certificate>()
  private own: Certificate
  private swarm?: Swarm
  private timer?: ReturnType<typeof setInterval>
  private cachedCredential?: Uint8Array

  constructor (private readonly init: MembershipInit) {
    super()
    this.log = init.logger.forComponent('clawmatrix:membership')
    this.authorityKey = parsePublicKey(init.authority)
    this.own = checkCertificate(this.authorityKey, init.certificate)
    this.revocations = new RevocationList(this.authorityKey, init.stateDir)
    this.holders.set(this.own.nodeId, this.own)
  }

  /**
   * The membership of a node whose state directory holds a joined invite;
   * `authority`, when given, must be the one it joined.
   */
  static async load (stateDir: string, init: Pick<MembershipInit, 'logger' | 'checkIntervalMs'> & { authority?: string }): Promise<Membership> {
    const { authority, checkIntervalMs, logger } = init
    const state = await loadJoinedState(stateDir)
    if (state == null) {
      throw new MembershipSetupError(`this node is in a managed cluster (authority is set) but ${stateDir} holds no certificate; run \`clawmatrix join <token> --state-dir ${stateDir}\` with an invite from \`clawmatrix invite\``)
    }
    if (authority != null && authority !== state.authority) {
      throw new MembershipSetupError(`the config names authority ${authority} but ${stateDir} joined the cluster of ${state.authority}`)
    }
    const membership = new Membership({ authority: state.authority, certificate: state.certificate, stateDir, checkIntervalMs, logger })
    await membership.revocations.load()
    return membership
  }

  get authority (): string {
    return this.init.authority
  }

  get certificate (): Certificate {
    return this.own
  }

  /** Attaches the swarm whose gate this is; call before start. */
  attach (swarm: Swarm): void {
    this.swarm = swarm
  }

  start (): void {
    const pubsub = this.swarm?.services.pubsub
    if (pubsub != null) {
      pubsub.topicValidators.set(MEMBERSHIP_TOPIC, this.validate)
      pubsub.subscribe(MEMBERSHIP_TOPIC)
    }
    this.timer = setInterval(() => { void this.check() }, this.init.checkIntervalMs ?? 15_000)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    const pubsub = this.swarm?.services.pubsub
    if (pubsub != null) {
      pubsub.unsubscribe(MEMBERSHIP_TOPIC)
      pubsub.topicValidators.delete(MEMBERSHIP_TOPIC)
    }
  }

  // --- the gate's admission ---

  credential (): Uint8Array {
    this.cachedCredential ??= new TextEncoder().encode(JSON.stringify({ certificate: this.own, revocations: this.revocations.list() }))
    return this.cachedCredential
  }

  admit (peer: PeerId, bytes: Uint8Array): void {
    let credential: Credential
    try {
      credential = JSON.parse(new TextDecoder().decode(bytes))
    } catch {
      throw new PeerRefusedError('its credential is not JSON')
    }
    // Revocations first: a node back from being offline learns them before it admits anyone they void.
    for (const revocation of Array.isArray(credential?.revocations) ? credential.revocations : []) {
      void this.applyRevocation(revocation).catch(() => {})
    }
    this.accept(credential?.certificate, peer.toString())
  }

  refuses (peer: PeerId): boolean {
    const id = peer.toString()
    if (this.revocations.hasPeer(id)) return true
    const known = this.certificates.get(id)
    return known != null && this.revocations.revokes(known)
  }

  // --- certified names: the one lookup for who a peer is ---

  /**
   * Verifies a certificate presented by `peerId` (at the gate, or in its
   * card) and records it. Throws PeerRefusedError saying why it is refused.
   */
  accept (input: unknown, peerId: string, now = Date.now()): Certificate {
    if (input == null) throw new PeerRefusedError(`peer ${peerId} has no certificate from this cluster's authority`)
    const known = this.certificates.get(peerId)
    // Cards repeat the certificate every period: a known one needs no second signature check.
    if (known != null && known.sig === (input as Certificate).sig && this.isValid(known, now)) return known
    let certificate: Certificate
    try {
      certificate = checkCertificate(this.authorityKey, input)
    } catch (err: any) {
      throw new PeerRefusedError(`peer ${peerId}: ${err.message}`)
    }
    const name = certificate.nodeId
    if (certificate.peerId !== peerId) {
      throw new PeerRefusedError(`peer ${peerId} presented the certificate of "${name}", issued to peer ${certificate.peerId}`)
    }
    if (certificate.expiresAt <= now) {
      throw new PeerRefusedError(`the certificate of "${name}" expired ${new Date(certificate.expiresAt).toISOString()}`)
    }
    if (this.revocations.revokes(certificate)) throw new PeerRefusedError(`"${name}" (peer ${peerId}) is revoked`)
    if (name === this.own.nodeId && peerId !== this.own.peerId) {
      throw new PeerRefusedError(`peer ${peerId} holds a certificate for "${name}", which is this node's name`)
    }
    const holder = this.holders.get(name)
    if (holder != null && holder.peerId !== peerId) {
      if (holder.issuedAt >= certificate.issuedAt && this.isValid(holder, now)) {
        throw new PeerRefusedError(`the name "${name}" is held by peer ${holder.peerId}, whose certificate is newer`)
      }
      this.refuse(holder.peerId, name, `its certificate for "${name}" was superseded by a newer one for peer ${peerId}`)
    }
    const previous = this.certificates.get(peerId)
    if (previous == null || previous.issuedAt <= certificate.issuedAt) {
      this.certificates.set(peerId, certificate)
      this.holders.set(name, certificate)
    }
    return this.certificates.get(peerId)!
  }

  certificateOf (peerId: string): Certificate | undefined {
    if (peerId === this.own.peerId) return this.own
    const certificate = this.certificates.get(peerId)
    return certificate != null && this.isValid(certificate) ? certificate : undefined
  }

  /** The certified name of a peer (this node included), or undefined if it holds no valid certificate. */
  nameOf (peerId: string): string | undefined {
    return this.certificateOf(peerId)?.nodeId
  }

  // --- revocation ---

  /** Verifies, stores and enforces a revocation. Returns true when it was new here. */
  async applyRevocation (input: unknown): Promise<boolean> {
    const revocation = this.revocations.add(input)
    if (revocation == null) return false
    this.cachedCredential = undefined
    this.log('revocation of %s applied', revocation.nodeId ?? revocation.peerId)
    for (const [peerId, certificate] of this.certificates) {
      if (this.revocations.revokes(certificate)) this.refuse(peerId, certificate.nodeId, 'revoked by the cluster authority')
    }
    if (revocation.peerId != null && !this.certificates.has(revocation.peerId)) {
      this.refuse(revocation.peerId, undefined, 'revoked by the cluster authority')
    }
    await this.revocations.save()
    return true
  }

  /** Applies a revocation handed over by the operator and publishes it to the cluster. */
  async publishRevocation (input: unknown): Promise<{ revocation: Revocation, isNew: boolean }> {
    const isNew = await this.applyRevocation(input)
    const revocation = input as Revocation
    await this.swarm?.services.pubsub.publish(MEMBERSHIP_TOPIC, new TextEncoder().encode(JSON.stringify({ kind: 'revocation', revocation })))
      .catch((err: any) => { this.log('publishing a revocation failed: %s', err.message) })
    return { revocation, isNew }
  }

  revocationList (): Revocation[] {
    return this.revocations.list()
  }

  private readonly validate = (_propagator: PeerId, message: Message): TopicValidatorResult => {
    if (message.data.byteLength > MAX_CREDENTIAL_BYTES) return TopicValidatorResult.Reject
    let parsed: any
    try {
      parsed = JSON.parse(new TextDecoder().decode(message.data))
    } catch {
      return TopicValidatorResult.Reject
    }
    if (parsed?.kind !== 'revocation') return TopicValidatorResult.Ignore
    try {
      // Added at once, so the check below already sees it; saving and closing connections follow.
      const revocation = this.revocations.add(parsed.revocation)
      if (revocation == null) return TopicValidatorResult.Ignore
      this.cachedCredential = undefined
      this.log('revocation of %s applied', revocation.nodeId ?? revocation.peerId)
      void this.enforce()
      return TopicValidatorResult.Accept
    } catch {
      return TopicValidatorResult.Reject
    }
  }

  private async enforce (): Promise<void> {
    for (const [peerId, certificate] of this.certificates) {
      if (this.revocations.revokes(certificate)) this.refuse(peerId, certificate.nodeId, 'revoked by the cluster authority')
    }
    for (const revocation of this.revocations.list()) {
      if (revocation.peerId != null && !this.certificates.has(revocation.peerId)) this.refuse(revocation.peerId, undefined, 'revoked by the cluster authority')
    }
    await this.revocations.save().catch((err: any) => { this.log('saving revocations failed: %s', err.message) })
  }

  // --- expiry and renewal ---

  private isValid (certificate: Certificate, now = Date.now()): boolean {
    return certificate.expiresAt > now && !this.revocations.revokes(certificate)
  }

  /** Closes connections to peers whose certificate expired; picks up a renewed certificate of this node. Runs every check interval. */
  async check (): Promise<void> {
    const now = Date.now()
    for (const [peerId, certificate] of this.certificates) {
      if (certificate.expiresAt <= now) this.refuse(peerId, certificate.nodeId, `its certificate expired ${new Date(certificate.expiresAt).toISOString()}`)
    }
    await this.reloadOwn().catch((err: any) => { this.log('re-reading %s failed: %s', MEMBERSHIP_FILE, err.message) })
  }

  private async reloadOwn (): Promise<void> {
    const text = await readFile(join(this.init.stateDir, MEMBERSHIP_FILE), 'utf8')
    const certificate = checkCertificate(this.authorityKey, JSON.parse(text).certificate)
    if (certificate.sig === this.own.sig || certificate.peerId !== this.own.peerId || certificate.issuedAt <= this.own.issuedAt) return
    this.own = certificate
    this.holders.set(certificate.nodeId, certificate)
    this.cachedCredential = undefined
    this.log('renewed certificate of %s, valid until %s', certificate.nodeId, new Date(certificate.expiresAt).toISOString())
    this.safeDispatchEvent('certificate:renewed', { detail: certificate })
  }

  /** Forgets a peer's certificate and closes every connection to it. */
  private refuse (peerId: string, nodeId: string | undefined, reason: string): void {
    const certificate = this.certificates.get(peerId)
    this.certificates.delete(peerId)
    if (certificate != null && this.holders.get(certificate.nodeId)?.peerId === peerId) this.holders.delete(certificate.nodeId)
    const connections = this.swarm?.getConnections(peerIdFromString(peerId)) ?? []
    for (const connection of connections) connection.abort(new PeerRefusedError(`${nodeId ?? peerId}: ${reason}`))
    if (certificate == null && connections.length === 0) return
    this.safeDispatchEvent('peer:refused', { detail: { peerId, nodeId, reason } })
  }

  /** Certified peers, for status. */
  peers (): Certificate[] {
    return [...this.certificates.values()].filter(c => this.isValid(c))
  }
}
