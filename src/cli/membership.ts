import { DEFAULT_PROXY_PORT } from '../config/schema.js'
import { Authority, decodeInvite, defaultAuthorityDir, joinInvite, parseDuration } from '../membership/index.js'
import { defaultStateDir } from './run-node.js'
import { endpointHeaders, noNodeAnswered } from './work.js'
import { CommandError } from './errors.js'

const say = (line: string): void => { process.stderr.write(line + '\n') }

/** `clawmatrix init`: a new cluster authority and secret. */
export async function initCommand (options: { authorityDir?: string }): Promise<void> {
  const dir = options.authorityDir ?? defaultAuthorityDir()
  const authority = await Authority.create(dir)
  process.stdout.write(`created a cluster authority in ${dir}
keep that directory on your own machine, not on a running node: whoever holds it can admit anyone.

authority: ${authority.publicKey}

every node, the first one too, joins with an invite (run here):
  clawmatrix invite <nodeId> [--tags a,b] [--bootstrap ws://host:port] --authority-dir ${dir}
and on that node:
  clawmatrix join <token>

a joined node's config needs no secret; the first node's config can be as small as:
  { "nodeId": "<nodeId>", "listen": true, "authority": "${authority.publicKey}" }
`)
}

export interface InviteCommandOptions {
  nodeId: string
  tags?: string
  expires?: string
  bootstrap?: string
  newKey?: boolean
  authorityDir?: string
}

/** `clawmatrix invite`: prints one token on stdout (and only that), what it grants on stderr. */
export async function inviteCommand (options: InviteCommandOptions): Promise<void> {
  const authority = await Authority.open(options.authorityDir ?? defaultAuthorityDir())
  const tags = options.tags == null ? [] : options.tags.split(',').map(t => t.trim()).filter(t => t !== '')
  const invite = await authority.invite({
    nodeId: options.nodeId,
    tags,
    expiresInMs: options.expires == null ? undefined : parseDuration(options.expires),
    bootstrap: options.bootstrap,
    newKey: options.newKey
  })
  const { certificate } = invite
  say(`${invite.renewal ? 'renewal for' : 'invite for'} "${certificate.nodeId}" (peer id ${certificate.peerId}${tags.length > 0 ? `, tags ${tags.join(',')}` : ''}), valid until ${new Date(certificate.expiresAt).toISOString()}`)
  say(invite.renewal
    ? 'the node keeps its key: run `clawmatrix join <token>` in its state directory; a running node picks the certificate up by itself'
    : 'it holds the node\'s key and the cluster secret: pass it privately, then on the node run `clawmatrix join <token>` (or `clawmatrix join -` to read it from stdin)')
  process.stdout.write(invite.token + '\n')
}

/** `clawmatrix join`: installs an invite in the state directory. */
export async function joinCommand (token: string, options: { stateDir?: string }): Promise<void> {
  const text = token === '-' ? await readStdin() : token
  const nodeId = decodeInvite(text).certificate.nodeId
  const stateDir = options.stateDir ?? defaultStateDir(nodeId)
  const state = await joinInvite(text, stateDir)
  const { certificate } = state
  process.stdout.write(`joined as "${certificate.nodeId}" (peer id ${certificate.peerId}), certified until ${new Date(certificate.expiresAt).toISOString()}; state in ${stateDir}
authority: ${state.authority}${state.bootstrap == null ? '' : `\nbootstrap peer: ${state.bootstrap}`}
start it with: clawmatrix node --config <file.json> --state-dir ${stateDir}   (the config needs no secret)
`)
}

/** `clawmatrix revoke`: signs a revocation and hands it to a running node, which publishes it. */
export async function revokeCommand (target: string, options: { authorityDir?: string, host?: string, port?: number }): Promise<void> {
  const authority = await Authority.open(options.authorityDir ?? defaultAuthorityDir())
  const { revocation, peerIds } = await authority.revoke(target)
  const url = `http://${options.host ?? '127.0.0.1'}:${options.port ?? DEFAULT_PROXY_PORT}/clawmatrix/revocations`
  let res: Response
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { ...endpointHeaders(), 'content-type': 'application/json' },
      body: JSON.stringify({ revocation }),
      signal: AbortSignal.timeout(10_000)
    })
  } catch (err: any) {
    throw new CommandError(`signed the revocation of "${target}", but ${noNodeAnswered(url, err, 'run the same command again with --port of a running node')}`)
  }
  const body: any = await res.json().catch(() => ({}))
  if (!res.ok) throw new CommandError(`the node at ${url} refused the revocation: ${body?.error?.message ?? `HTTP ${res.status}`}`)
  process.stdout.write(`revoked "${target}"${peerIds.length > 0 ? ` (peer id ${peerIds.join(', ')})` : ''}; the node published it to the cluster (${body.revocations} revocation(s) known)\n`)
}

async function readStdin (): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8').trim()
}
