import { existsSync } from 'node:fs'
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testNodes, type TestNode } from '../helpers/nodes.js'
import { waitFor } from '../helpers/wait.js'

/** Debian's chromium (`.ci/run` installs it). */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
/** Set to a path (e.g. docs/mesh.png) to keep the screenshot. */
const KEEP_SCREENSHOT = process.env.CLAWMATRIX_SCREENSHOT

const nodes = testNodes()
let hub: TestNode
let alpha: TestNode
let beta: TestNode
let browser: Browser
let dir: string

describe.skipIf(!existsSync(CHROMIUM))('the mesh page, in headless Chromium', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clawmatrix-page-'))
    hub = await nodes.start({ nodeId: 'hub', listen: true, tags: ['relay', 'cloud'] })
    const peers = [{ nodeId: 'hub', url: hub.wsAddress() }]
    alpha = await nodes.start({
      nodeId: 'alpha',
      peers,
      tags: ['home'],
      agents: [{ id: 'coder', description: 'writes code', tags: ['dev'] }, { id: 'reviewer', description: 'reviews code', tags: ['dev'] }],
      toolProxy: { enabled: true, allow: ['read', 'exec'], deny: ['write'] }
    })
    beta = await nodes.start({
      nodeId: 'beta',
      peers,
      tags: ['office', 'gpu'],
      models: [{ id: 'llama-70b', provider: 'openai', baseUrl: 'http://127.0.0.1:1/v1' }],
      agents: [{ id: 'researcher', description: 'finds things', tags: [] }]
    })
    await waitFor('alpha to reach beta through the hub', () => alpha.node.view.nodes().find(n => n.nodeId === 'beta')?.reach === 'relayed')
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Playwright gives every launch a fresh profile directory of its own.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
  })

  afterAll(async () => {
    await browser?.close()
    await nodes.cleanup()
    await rm(dir, { recursive: true, force: true })
  })

  async function count (page: Page, selector: string): Promise<number> {
    return page.locator(selector).count()
  }

  async function nodesShown (page: Page): Promise<string[]> {
    return page.$$eval('[data-node-id]', els => els.map(e => e.getAttribute('data-node-id') ?? '').sort())
  }

  it('draws the nodes and links of a running 3-node mesh, offline, and follows it as it changes', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } })
    const origin = new URL(alpha.node.http.url).origin
    const elsewhere: string[] = []
    const problems: string[] = []
    page.on('request', request => { if (!request.url().startsWith(origin)) elsewhere.push(request.url()) })
    page.on('console', message => { if (message.type() === 'error') problems.push(message.text()) })
    page.on('pageerror', err => { problems.push(err.message) })

    await page.goto(`${origin}/clawmatrix/`)
    // Polled through locators: the page's CSP forbids the eval that page.waitForFunction needs.
    // Connections open on demand: before any work alpha and beta share only the hub, and the page says how beta
    // would be reached.
    await waitFor('the page to draw 3 nodes and 2 links', async () => await count(page, '[data-node-id]') === 3 && await count(page, '[data-edge]') === 2)
    expect(await nodesShown(page)).toEqual(['alpha', 'beta', 'hub'])
    expect(await page.textContent('[data-card="beta"]')).toContain('relayed via hub (on demand)')
    // A dial stands for the work that opens the circuit; the page then draws it.
    await alpha.node.swarm.dial(beta.node.peerId)
    await waitFor('the page to draw the relayed link', async () => await count(page, '[data-edge]') === 3)
    const edges = await page.$$eval('[data-edge]', els => Object.fromEntries(els.map(e => [e.getAttribute('data-edge'), e.getAttribute('data-relayed')])))
    expect(edges).toEqual({ 'alpha hub': 'false', 'beta hub': 'false', 'alpha beta': 'true' })
    expect(await page.textContent('#self')).toBe('alpha')
    const betaCard = await page.textContent('[data-card="beta"]')
    expect(betaCard).toContain('relayed via hub')
    expect(betaCard).toContain('llama-70b')
    expect(betaCard).toContain('researcher')
    expect(await page.textContent('[data-card="alpha"]')).toContain('read, exec (not write)')
    expect(await page.getAttribute('[data-node-id="alpha"]', 'class')).toBe('node self')

    const shot = join(dir, 'mesh.png')
    await page.screenshot({ path: shot })
    expect((await readFile(shot)).subarray(1, 4).toString()).toBe('PNG')
    if (KEEP_SCREENSHOT != null) await copyFile(shot, KEEP_SCREENSHOT)

    // It refreshes by itself: a node that leaves disappears without a reload...
    await beta.node.stop()
    await waitFor('the page to drop beta', async () => await count(page, '[data-node-id]') === 2)
    expect(await nodesShown(page)).toEqual(['alpha', 'hub'])
    // ...and a node that stops answering is reported as such.
    await alpha.node.stop()
    await waitFor('the page to report the node silent', async () => await count(page, 'body.stale') === 1)
    expect(await page.textContent('#updated')).toBe('not answering')

    // Nothing was loaded from anywhere but the node, and the page raised no error before the node went away.
    expect(elsewhere).toEqual([])
    expect(problems.filter(p => !/Failed to load resource|Failed to fetch/.test(p))).toEqual([])
  })
})
