import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { REPO_ROOT, requireBuilt } from './paths.js'

/**
 * Loads a module of the built package, e.g. `importDist<typeof import(
 * '../../src/node/swarm.js')>('node/swarm.js')`: the bench runs what `npm run
 * build` ships in dist/, while its types come from src/, so type-checking
 * never depends on a build being present or fresh.
 */
export async function importDist<Module> (path: string): Promise<Module> {
  return await import(pathToFileURL(requireBuilt(join(REPO_ROOT, 'dist', path))).href) as Module
}
