import { readFile } from 'node:fs/promises'
import { Value } from 'typebox/value'
import { isLoopback, peerUrlToMultiaddr } from './addresses.js'
import { clusterSecrets, ConfigSchema, MAX_SECRETS, MIN_SECRET_LENGTH, NAME_RULE, PRINTABLE_PATTERN, type Config } from './schema.js'
import { ConfigError } from './errors.js'

/** Fields whose values never appear in an error (`secrets[1]` is a field of `secrets`). */
const SECRET_FIELDS = ['secret', 'secrets', 'proxyToken']
const isSecretField = (field: string): boolean => SECRET_FIELDS.includes(field.replace(/\[\d+\]$/, ''))

/** Validates a config and fills in every default. Throws ConfigError. */
export function parseConfig (input: unknown, source?: string): Config {
  if (input == null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ConfigError([`the config must be a JSON object, got ${describe(input)}`], source)
  }
  const withSections = inferDialects({ toolProxy: {}, modelRouting: {}, heartbeat: {}, reconnect: {}, limits: {}, mesh: {}, ...input })
  const problems = schemaProblems(withSections)
  const { secret, secrets } = withSections as Record<string, unknown>
  if (secret == null && secrets == null) problems.push('secret: missing; it is required')
  if (secret != null && secrets != null) problems.push('secret: set together with secrets; expected one of them (secrets lists every accepted secret, newest first, and replaces secret while the cluster rotates)')
  if (problems.length === 0) {
    problems.push(...semanticProblems(Value.Default(ConfigSchema, structuredClone(withSections)) as Config))
  }
  if (problems.length > 0) {
    throw new ConfigError(problems, source)
  }
  return Value.Default(ConfigSchema, structuredClone(withSections)) as Config
}

/** Reads and validates a config file. Throws ConfigError. */
export async function loadConfigFile (path: string): Promise<Config> {
  return parseConfig(await readConfigFile(path), path)
}

/**
 * A config file's JSON, not validated yet: for callers that complete it
 * first (the CLI adds the secret from the environment and a joined node's
 * certified name). Throws ConfigError.
 */
export async function readConfigFile (path: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    throw new ConfigError([err.code === 'ENOENT' ? `file not found: ${path}` : `cannot read ${path}: ${err.code ?? err.message}`])
  }
  try {
    return JSON.parse(text)
  } catch (err: any) {
    throw new ConfigError([`not valid JSON: ${err.message}`], path)
  }
}

/** A model whose provider is `anthropic` speaks the Anthropic dialect unless told otherwise. */
function inferDialects (input: Record<string, any>): Record<string, any> {
  if (!Array.isArray(input.models)) return input
  return {
    ...input,
    models: input.models.map((m: any) => m?.provider === 'anthropic' && m.dialect == null ? { ...m, dialect: 'anthropic' } : m)
  }
}

function schemaProblems (input: object): string[] {
  const problems: string[] = []
  for (const error of Value.Errors(ConfigSchema, input)) {
    const field = fieldName(error.instancePath)
    const params = error.params as Record<string, any>
    switch (error.keyword) {
      case 'boolean':
        break // repeated by the parent's additionalProperties error
      case 'required':
        for (const key of params.requiredProperties as string[]) {
          problems.push(`${join(field, key)}: missing; it is required`)
        }
        break
      case 'additionalProperties': {
        const allowed = Object.keys(schemaAt(error.schemaPath)?.properties ?? {})
        for (const key of params.additionalProperties as string[]) {
          problems.push(`${join(field, key)}: unknown key; expected one of ${allowed.join(', ')}`)
        }
        break
      }
      default: {
        const value = valueAt(input, error.instancePath)
        const shown = isSecretField(field) ? `(the ${field.startsWith('secrets[') ? 'secret' : field}, not shown)` : describe(value)
        const expected = expectation(field, error.keyword, params, error.message)
        problems.push(`${field}: got ${shown}; ${expected}`)
      }
    }
  }
  return problems
}

/** What a field should have held, in the words an operator knows. */
function expectation (field: string, keyword: string, params: Record<string, any>, message: string): string {
  if (/^secrets?(\[\d+\])?$/.test(field) && keyword === 'minLength') return `expected at least ${MIN_SECRET_LENGTH} characters`
  if (field === 'secrets' && (keyword === 'minItems' || keyword === 'maxItems')) return `expected 1 to ${MAX_SECRETS} secrets, newest first`
  if (keyword === 'pattern') return params.pattern === PRINTABLE_PATTERN ? 'expected text without control characters' : `expected ${NAME_RULE}`
  if (keyword === 'enum') return `expected one of ${(params.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}`
  return `expected ${message.replace(/^must (be )?/, '')}`
}

function semanticProblems (config: Config): string[] {
  const problems: string[] = []
  const secrets = clusterSecrets(config)
  secrets.forEach((secret, i) => {
    const field = config.secrets == null ? 'secret' : `secrets[${i}]`
    if (new Set(secret).size < 8) {
      problems.push(`${field}: too weak (fewer than 8 distinct characters); expected a random string, e.g. \`openssl rand -hex 32\``)
    }
    if (secrets.indexOf(secret) < i) problems.push(`${field}: the same secret as secrets[${secrets.indexOf(secret)}]; expected each secret once`)
  })
  const seenPeers = new Set<string>()
  config.peers.forEach((peer, i) => {
    if (peer.nodeId === config.nodeId) {
      problems.push(`peers[${i}].nodeId: got "${peer.nodeId}", which is this node's own nodeId; expected another node`)
    }
    if (seenPeers.has(peer.nodeId)) {
      problems.push(`peers[${i}].nodeId: got "${peer.nodeId}" twice; expected each peer once`)
    }
    seenPeers.add(peer.nodeId)
    try {
      peerUrlToMultiaddr(peer.url)
    } catch (err: any) {
      problems.push(`peers[${i}].url: got ${describe(peer.url)}; ${err.message}`)
    }
  })
  duplicates(config.agents.map(a => a.id)).forEach(id => problems.push(`agents: id "${id}" appears more than once; expected unique ids`))
  config.agents.forEach((agent, i) => {
    if (agent.command != null && agent.a2a != null) problems.push(`agents[${i}]: "${agent.id}" has both a command and an a2a agent; expected one way to run it`)
  })
  duplicates(config.models.map(m => m.id)).forEach(id => problems.push(`models: id "${id}" appears more than once; expected unique ids`))
  if (config.authority == null) {
    const unkept = [
      ...(config.toolProxy.allowFrom != null ? ['toolProxy.allowFrom'] : []),
      ...config.agents.flatMap((a, i) => a.allowFrom != null ? [`agents[${i}].allowFrom`] : []),
      ...config.models.flatMap((m, i) => m.allowFrom != null ? [`models[${i}].allowFrom`] : [])
    ]
    for (const field of unkept) {
      problems.push(`${field}: set, but this cluster is unmanaged (no authority), where any secret holder can claim any name; expected a managed cluster (\`clawmatrix init\`, then \`clawmatrix join\`) or no allowFrom`)
    }
  }
  if (config.reconnect.minDelayMs > config.reconnect.maxDelayMs) {
    problems.push(`reconnect.minDelayMs: got ${config.reconnect.minDelayMs}, above maxDelayMs ${config.reconnect.maxDelayMs}; expected min <= max`)
  }
  if (!isLoopback(config.proxyHost) && config.proxyToken == null) {
    problems.push(`proxyToken: missing while proxyHost is ${describe(config.proxyHost)}; expected a token, since the endpoint can run work on the whole cluster (or keep proxyHost on 127.0.0.1)`)
  }
  if (config.listen && config.listenPort !== 0 && config.listenPort === config.proxyPort) {
    problems.push(`proxyPort: got ${config.proxyPort}, the same as listenPort; expected two different ports`)
  }
  config.announceAddresses.forEach((address, i) => {
    try {
      peerUrlToMultiaddr(address)
    } catch (err: any) {
      problems.push(`announceAddresses[${i}]: got ${describe(address)}; ${err.message}`)
    }
  })
  return problems
}

function duplicates (values: string[]): string[] {
  return [...new Set(values.filter((v, i) => values.indexOf(v) !== i))]
}

/** "/peers/0/url" -> "peers[0].url" */
function fieldName (pointer: string): string {
  return pointer.split('/').slice(1).reduce((name, part) =>
    /^\d+$/.test(part) ? `${name}[${part}]` : join(name, part), '')
}

function join (parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`
}

function valueAt (root: unknown, pointer: string): unknown {
  return pointer.split('/').slice(1).reduce<any>((node, part) => node?.[part], root)
}

function schemaAt (pointer: string): any {
  return pointer.replace(/^#\/?/, '').split('/').filter(Boolean).reduce<any>((node, part) => node?.[part], ConfigSchema)
}

function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}
