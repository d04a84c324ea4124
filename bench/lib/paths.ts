import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root: the nearest folder above this file with a package.json (works from bench/build too). */
export const REPO_ROOT = findUp(dirname(fileURLToPath(import.meta.url)), 'package.json')

/** The built CLI, as users run it. */
export const CLI = join(REPO_ROOT, 'dist', 'cli', 'main.js')

/** Throws a clear error when a file the bench runs has not been built. */
export function requireBuilt (file: string): string {
  if (!existsSync(file)) throw new Error(`${file} is missing; run the bench with \`npm run bench\`, which builds it first`)
  return file
}

function findUp (dir: string, name: string): string {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, name))) return at
    if (dirname(at) === at) throw new Error(`no ${name} above ${dir}`)
  }
}
