import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { PeerKeyError } from './errors.js'

export const PEER_KEY_FILE = 'peer-key'

/**
 * Loads the node's private key from its state directory, creating it on first
 * start, so that a restarted node keeps its peer id. The file is mode 0600.
 */
export async function loadOrCreatePeerKey (stateDir: string): Promise<PrivateKey> {
  const file = join(stateDir, PEER_KEY_FILE)
  try {
    return privateKeyFromProtobuf(await readFile(file))
  } catch (err: any) {
    if (err.code !== 'ENOENT') {
      throw new PeerKeyError(`cannot load the peer key from ${file}: ${err.message}`, { cause: err })
    }
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  const key = await generateKeyPair('Ed25519')
  await writeFile(file, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
  await chmod(file, 0o600)
  return key
}
