import { randomBytes } from 'node:crypto'
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { issueCertificate, issueRevocation, type Certificate, type Revocation } from './certificate.js'
import { MembershipSetupError } from './errors.js'
import { withFileLock } from './file-lock.js'
import { encodeInvite } from './invite.js'
import { generateAuthorityKey, parsePrivateKey } from './keys.js'
import type { KeyObject } from 'node:crypto'

export const AUTHORITY_KEY_FILE = 'authority.key'
export const AUTHORITY_FILE = 'authority.json'
/** Every certificate issued, so a second invite for a node renews it (same peer id) and `revoke <name>` finds its peer ids. */
export const ISSUED_FILE = 'issued.json'
export const DEFAULT_CERTIFICATE_DAYS = 365
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** $CLAWMATRIX_AUTHORITY_DIR, else ~/.clawmatrix/authority. */
export function defaultAuthorityDir (): string {
  return process.env.CLAWMATRIX_AUTHORITY_DIR ?? join(homedir(), '.clawmatrix', 'authority')
}

interface AuthorityRecord {
  publicKey: string
  secret: string
  createdAt: string
}

interface IssuedRecord {
  nodeId: string
  peerId: string
  tags: string[]
  issuedAt: number
  expiresAt: number
  revoked?: boolean
}

export interface InviteOptions {
  nodeId: string
  tags?: string[]
  /** Certificate lifetime. @default 365 days */
  expiresInMs?: number
  /** A peer url (ws://host:port or multiaddr) the new node dials first. */
  bootstrap?: string
  /** Give the node a new key even if it holds a live certificate (a replacement machine). @default false */
  newKey?: boolean
}

export interface Invite {
  token: string
  certificate: Certificate
  /** True when the node keeps its key and only its certificate is new. */
  renewal: boolean
}

/**
 * The cluster authority: an Ed25519 key that signs certificates and
 * revocations, and the cluster secret it hands to new members. It lives in a
 * directory on the operator's machine, not on any running node.
 */
export class Authority {
  private constructor (readonly dir: string, private readonly key: KeyObject, readonly publicKey: string, private readonly secret: string) {}

  /** Creates the key (mode 0600) and a fresh secret; refuses to overwrite an existing authority. */
  static async create (dir: string): Promise<Authority> {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const { privatePem, publicKey } = generateAuthorityKey()
    const secret = randomBytes(32).toString('hex')
    try {
      await writeFile(join(dir, AUTHORITY_KEY_FILE), privatePem, { mode: 0o600, flag: 'wx' })
    } catch (err: any) {
      if (err.code === 'EEXIST') throw new MembershipSetupError(`${dir} already holds an authority key; use it, or choose another --authority-dir`)
      throw err
    }
    await chmod(join(dir, AUTHORITY_KEY_FILE), 0o600)
    const record: AuthorityRecord = { publicKey, secret, createdAt: new Date().toISOString() }
    await writeFile(join(dir, AUTHORITY_FILE), JSON.stringify(record, null, 2) + '\n', { mode: 0o600 })
    return new Authority(dir, parsePrivateKey(privatePem), publicKey, secret)
  }

  static async open (dir: string): Promise<Authority> {
    let pem: string, record: AuthorityRecord
    try {
      pem = await readFile(join(dir, AUTHORITY_KEY_FILE), 'utf8')
      record = JSON.parse(await readFile(join(dir, AUTHORITY_FILE), 'utf8'))
    } catch (err: any) {
      throw new MembershipSetupError(`no cluster authority in ${dir} (${err.code ?? err.message}); create one with \`clawmatrix init --authority-dir ${dir}\``)
    }
    return new Authority(dir, parsePrivateKey(pem), record.publicKey, record.secret)
  }

  async invite (options: InviteOptions): Promise<Invite> {
    for (const [what, name] of [['<nodeId>', options.nodeId], ...(options.tags ?? []).map(t => ['--tags', t])] as const) {
      if (!NAME.test(name)) throw new MembershipSetupError(`${what}: got ${JSON.stringify(name).slice(0, 80)}; expected letters, digits, ".", "_" or "-" (at most 64, starting with a letter or digit)`)
    }
    return this.updateIssued(async issued => this.issue(issued, options))
  }

  private async issue (issued: IssuedRecord[], options: InviteOptions): Promise<Invite> {
    const now = Date.now()
    const live = options.newKey === true
      ? undefined
      : issued.findLast(r => r.nodeId === options.nodeId && r.revoked !== true)
    let peerKey: Uint8Array | undefined
    let peerId: string
    if (live != null) {
      peerId = live.peerId
    } else {
      const key = await generateKeyPair('Ed25519')
      peerKey = privateKeyToProtobuf(key)
      peerId = peerIdFromPrivateKey(key).toString()
    }
    const certificate = issueCertificate(this.key, {
      nodeId: options.nodeId,
      peerId,
      tags: options.tags ?? [],
      // A renewal must be newer than the certificate it replaces even within one millisecond.
      issuedAt: Math.max(now, (live?.issuedAt ?? 0) + 1),
      expiresAt: now + (options.expiresInMs ?? DEFAULT_CERTIFICATE_DAYS * 86_400_000)
    })
    issued.push({ nodeId: certificate.nodeId, peerId, tags: certificate.tags, issuedAt: certificate.issuedAt, expiresAt: certificate.expiresAt })
    const token = encodeInvite({ authority: this.publicKey, secret: this.secret, certificate, peerKey, bootstrap: options.bootstrap })
    return { token, certificate, renewal: live != null }
  }

  /**
   * Revokes one peer id, or every certificate issued for a node id until now
   * (so a later `invite` for that name issues a new key and a valid certificate).
   */
  async revoke (target: string): Promise<{ revocation: Revocation, peerIds: string[] }> {
    return this.updateIssued(async issued => this.revokeIn(issued, target))
  }

  private revokeIn (issued: IssuedRecord[], target: string): { revocation: Revocation, peerIds: string[] } {
    const now = Date.now()
    const byPeer = issued.filter(r => r.peerId === target)
    let revocation: Revocation
    let hit: IssuedRecord[]
    if (byPeer.length > 0 || /^(12D3Koo|Qm)/.test(target)) {
      hit = byPeer
      revocation = issueRevocation(this.key, { peerId: target, revokedAt: now })
    } else {
      hit = issued.filter(r => r.nodeId === target)
      if (hit.length === 0) throw new MembershipSetupError(`this authority never issued a certificate for "${target}"; expected a node id or peer id it issued`)
      // The newest peer id as well, so every node can refuse its dials before any handshake.
      revocation = issueRevocation(this.key, { peerId: hit.at(-1)!.peerId, nodeId: target, issuedBefore: now, revokedAt: now })
    }
    for (const record of hit) record.revoked = true
    return { revocation, peerIds: [...new Set(hit.map(r => r.peerId))] }
  }

  /**
   * Reads issued.json, lets `change` add to it, and writes it back, holding its lock throughout:
   * two `invite`s (or an `invite` and a `revoke`) at once must not lose each other's record.
   */
  private async updateIssued<T> (change: (issued: IssuedRecord[]) => Promise<T> | T): Promise<T> {
    return withFileLock(join(this.dir, ISSUED_FILE), async () => {
      const issued = await this.issued()
      const result = await change(issued)
      await this.saveIssued(issued)
      return result
    })
  }

  private async issued (): Promise<IssuedRecord[]> {
    try {
      return JSON.parse(await readFile(join(this.dir, ISSUED_FILE), 'utf8'))
    } catch (err: any) {
      if (err.code === 'ENOENT') return []
      throw new MembershipSetupError(`cannot read ${join(this.dir, ISSUED_FILE)}: ${err.message}`)
    }
  }

  private async saveIssued (records: IssuedRecord[]): Promise<void> {
    const file = join(this.dir, ISSUED_FILE)
    await writeFile(`${file}.tmp`, JSON.stringify(records, null, 2) + '\n', { mode: 0o600 })
    await rename(`${file}.tmp`, file)
  }
}

/** Parses `30d`, `12h`, `45m` or `90s` into milliseconds. */
export function parseDuration (text: string): number {
  const match = /^(\d+)\s*([dhms])$/.exec(text.trim())
  if (match == null || Number(match[1]) <= 0) throw new MembershipSetupError(`--expires: got "${text}"; expected a positive number with d, h, m or s, e.g. 30d`)
  return Number(match[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 }[match[2] as 'd' | 'h' | 'm' | 's']
}
