import { createRequire } from 'node:module'

const pkg = createRequire(import.meta.url)('../package.json') as { version: string }

/** The clawmatrix package version, read from package.json (works from src and dist). */
export const VERSION: string = pkg.version
