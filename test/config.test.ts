import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config/load.js'
import { ConfigError } from '../src/config/errors.js'
import { clusterSecrets, ConfigSchema } from '../src/config/schema.js'
import { peerUrlToMultiaddr } from '../src/config/addresses.js'
import { runCliToEnd } from './helpers/cli.js'

const SECRET = 'a-perfectly-good-secret-9f8e7d6c'
const base = { nodeId: 'office', secret: SECRET }

function problems (input: unknown): string[] {
  try {
    parseConfig(input)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('the config was accepted')
}

describe('config', () => {
  it('fills every default from the schema', () => {
    const config = parseConfig(base)
    expect(config).toMatchObject({
      listen: false,
      listenHost: '0.0.0.0',
      listenPort: 19000,
      proxyHost: '127.0.0.1',
      proxyPort: 19001,
      peers: [],
      agents: [],
      models: [],
      tags: [],
      toolProxy: { enabled: false, allow: [], deny: [], maxOutputBytes: 1048576 },
      heartbeat: { intervalMs: 15000, maxMissed: 3 },
      reconnect: { minDelayMs: 1000, maxDelayMs: 60000 }
    })
  })

  it('refuses a missing nodeId and secret, naming both', () => {
    expect(problems({})).toEqual(['nodeId: missing; it is required', 'secret: missing; it is required'])
  })

  it('refuses a short or weak secret without ever showing it', () => {
    const short = problems({ ...base, secret: 'hunter2' })
    expect(short).toEqual(['secret: got (the secret, not shown); expected at least 16 characters'])
    const weak = problems({ ...base, secret: 'aaaaaaaaaaaaaaaaaaaaaaab' })
    expect(weak.join('\n')).toMatch(/secret: too weak/)
    expect(weak.join('\n')).not.toContain('aaaaaaaa')
  })

  it('takes a list of secrets (newest first) instead of one, checked the same way and never shown', () => {
    const NEW = 'the-newer-secret-0a1b2c3d4e5f'
    expect(clusterSecrets(parseConfig({ nodeId: 'office', secrets: [NEW, SECRET] }))).toEqual([NEW, SECRET])
    expect(clusterSecrets(parseConfig(base))).toEqual([SECRET])
    expect(problems({ ...base, secrets: [NEW] })).toEqual(['secret: set together with secrets; expected one of them (secrets lists every accepted secret, newest first, and replaces secret while the cluster rotates)'])
    const bad = problems({ nodeId: 'office', secrets: [NEW, 'hunter2', 'aaaaaaaaaaaaaaaaaaaaaaab', NEW] })
    expect(bad).toEqual(['secrets[1]: got (the secret, not shown); expected at least 16 characters'])
    const weak = problems({ nodeId: 'office', secrets: [NEW, 'aaaaaaaaaaaaaaaaaaaaaaab', NEW] })
    expect(weak).toEqual([
      'secrets[1]: too weak (fewer than 8 distinct characters); expected a random string, e.g. `openssl rand -hex 32`',
      'secrets[2]: the same secret as secrets[0]; expected each secret once'
    ])
    expect(problems({ nodeId: 'office', secrets: [] })).toEqual(['secrets: got (the secrets, not shown); expected 1 to 4 secrets, newest first'])
    for (const text of [...bad, ...weak]) expect(text).not.toMatch(/hunter2|aaaaaaaa|the-newer/)
  })

  it('never shows the proxy token either', () => {
    expect(problems({ ...base, proxyToken: 12345678 })).toEqual(['proxyToken: got (the proxyToken, not shown); expected string'])
  })

  it('refuses a local endpoint off loopback without a token', () => {
    expect(problems({ ...base, proxyHost: '0.0.0.0' })).toEqual([
      'proxyToken: missing while proxyHost is "0.0.0.0"; expected a token, since the endpoint can run work on the whole cluster (or keep proxyHost on 127.0.0.1)'
    ])
    expect(parseConfig({ ...base, proxyHost: '0.0.0.0', proxyToken: 'tok-123' }).proxyToken).toBe('tok-123')
  })

  it('refuses ports out of range with field, value and expectation', () => {
    expect(problems({ ...base, listenPort: 70000, proxyPort: -1 })).toEqual([
      'listenPort: got 70000; expected <= 65535',
      'proxyPort: got -1; expected >= 0'
    ])
  })

  it('refuses duplicate peer ids, a peer naming this node, and unparsable urls', () => {
    const found = problems({
      ...base,
      peers: [
        { nodeId: 'cloud', url: 'ws://cloud.example:19000' },
        { nodeId: 'cloud', url: 'wss://cloud.example' },
        { nodeId: 'office', url: 'ws://127.0.0.1:1' },
        { nodeId: 'home', url: 'http://home.example' },
        { nodeId: 'lab', url: '/ip4/10.0.0.1/tcp/1' }
      ]
    })
    expect(found).toEqual([
      'peers[1].nodeId: got "cloud" twice; expected each peer once',
      'peers[2].nodeId: got "office", which is this node\'s own nodeId; expected another node',
      'peers[3].url: got "http://home.example"; scheme http: is not supported; expected ws:// or wss://',
      'peers[4].url: got "/ip4/10.0.0.1/tcp/1"; a multiaddr must end in /ws, /wss or /tls/ws (WebSocket is the only transport)'
    ])
  })

  it('refuses unknown keys at any depth and lists the known ones', () => {
    const found = problems({ ...base, listenport: 1, toolProxy: { enable: true } })
    expect(found).toContain(`listenport: unknown key; expected one of ${Object.keys(ConfigSchema.properties).join(', ')}`)
    expect(found).toContain('toolProxy.enable: unknown key; expected one of enabled, allow, deny, maxOutputBytes, workdir, allowFrom')
  })

  it('refuses a bad nodeId, a bad dialect and a wrong type', () => {
    expect(problems({ ...base, nodeId: 'has space', models: [{ id: 'm', provider: 'p', dialect: 'gemini' }], listen: 'yes' })).toEqual([
      'nodeId: got "has space"; expected letters, digits, ".", "_" or "-" (at most 64, starting with a letter or digit)',
      'listen: got "yes"; expected boolean',
      'models[0].dialect: got "gemini"; expected one of "openai", "anthropic"'
    ])
  })

  it('infers the anthropic dialect from the provider, openai otherwise', () => {
    const { models } = parseConfig({ ...base, models: [{ id: 'a', provider: 'anthropic' }, { id: 'b', provider: 'ollama' }, { id: 'c', provider: 'anthropic', dialect: 'openai' }] })
    expect(models.map(m => m.dialect)).toEqual(['anthropic', 'openai', 'openai'])
  })

  it('turns ws and wss urls into multiaddrs', () => {
    expect(peerUrlToMultiaddr('ws://127.0.0.1:19000').toString()).toBe('/ip4/127.0.0.1/tcp/19000/ws')
    expect(peerUrlToMultiaddr('wss://relay.example.org').toString()).toBe('/dns/relay.example.org/tcp/443/tls/ws')
    expect(peerUrlToMultiaddr('ws://[::1]:7').toString()).toBe('/ip6/::1/tcp/7/ws')
    expect(peerUrlToMultiaddr('/dns4/relay.example.org/tcp/443/tls/ws').toString()).toBe('/dns4/relay.example.org/tcp/443/tls/ws')
  })

  it('the CLI refuses a bad config file at start, naming the file and field, never the secret', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clawmatrix-config-'))
    const file = join(dir, 'node.json')
    await writeFile(file, JSON.stringify({ nodeId: 'x', secret: 'short-secret', listenPort: 99999 }))
    const { code, output } = await runCliToEnd(['node', '--config', file, '--state-dir', dir])
    expect(code).toBe(1)
    expect(output).toContain(`invalid clawmatrix config in ${file}`)
    expect(output).toContain('listenPort: got 99999; expected <= 65535')
    expect(output).not.toContain('short-secret')
  })

  it('the CLI refuses a secret on the command line', async () => {
    const { code, output } = await runCliToEnd(['relay', '--secret', 'whatever-it-is-123456'])
    expect(code).toBe(2)
    expect(output).toMatch(/never taken from the command line/)
  })
})
