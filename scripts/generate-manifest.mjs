#!/usr/bin/env node
// Writes openclaw.plugin.json from the built code (run after tsc): the
// config schema is src/config/schema.ts's ConfigSchema, never a copy.
// --check: exit 1 when the file on disk differs, without writing it.
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { manifestText } from '../dist/openclaw/manifest.js'
import { VERSION } from '../dist/version.js'

const path = fileURLToPath(new URL('../openclaw.plugin.json', import.meta.url))
const expected = manifestText(VERSION)
const current = await readFile(path, 'utf8').catch(() => undefined)

if (process.argv.includes('--check')) {
  if (current !== expected) {
    process.stderr.write('openclaw.plugin.json is stale: run `npm run build` and commit it\n')
    process.exit(1)
  }
} else if (current !== expected) {
  await writeFile(path, expected)
  process.stdout.write('wrote openclaw.plugin.json\n')
}
