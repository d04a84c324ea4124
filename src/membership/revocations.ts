import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { MembershipSetupError } from './errors.js'
import { checkRevocation, revocationKey, revokes, type Certificate, type Revocation } from './certificate.js'
import type { KeyObject } from 'node:crypto'

export const REVOCATIONS_FILE = 'revocations.json'
/** More revocations than fit in one credential are refused; an authority re-keys the cluster long before. */
export const MAX_REVOCATIONS = 1024

/** The revocations a node knows, verified, and kept in its state directory across restarts. */
export class RevocationList {
  private readonly entries = new Map<string, Revocation>()
  private readonly peerIds = new Set<string>()

  constructor (private readonly authority: KeyObject, private readonly stateDir: string) {}

  async load (): Promise<void> {
    let json: unknown
    try {
      json = JSON.parse(await readFile(join(this.stateDir, REVOCATIONS_FILE), 'utf8'))
    } catch (err: any) {
      if (err.code === 'ENOENT') return
      throw new MembershipSetupError(`cannot read ${join(this.stateDir, REVOCATIONS_FILE)}: ${err.message}`)
    }
    for (const item of Array.isArray(json) ? json : []) this.add(item)
  }

  /** Verifies and adds a revocation; returns it when it is new, undefined when known. Throws when it is not valid. */
  add (input: unknown): Revocation | undefined {
    const revocation = checkRevocation(this.authority, input)
    const key = revocationKey(revocation)
    if (this.entries.has(key)) return undefined
    if (this.entries.size >= MAX_REVOCATIONS) throw new Error(`more than ${MAX_REVOCATIONS} revocations; re-key the cluster`)
    this.entries.set(key, revocation)
    if (revocation.peerId != null) this.peerIds.add(revocation.peerId)
    return revocation
  }

  async save (): Promise<void> {
    const file = join(this.stateDir, REVOCATIONS_FILE)
    await writeFile(`${file}.tmp`, JSON.stringify(this.list()) + '\n', { mode: 0o600 })
    await rename(`${file}.tmp`, file)
  }

  list (): Revocation[] {
    return [...this.entries.values()]
  }

  get size (): number {
    return this.entries.size
  }

  /** Whether a certificate is void. */
  revokes (certificate: Pick<Certificate, 'nodeId' | 'peerId' | 'issuedAt'>): boolean {
    if (this.peerIds.has(certificate.peerId)) return true
    for (const revocation of this.entries.values()) {
      if (revokes(revocation, certificate)) return true
    }
    return false
  }

  hasPeer (peerId: string): boolean {
    return this.peerIds.has(peerId)
  }
}
