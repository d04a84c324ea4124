import { isAbsolute, resolve } from 'node:path'
import { ToolError } from '../errors.js'

/**
 * Resolves a tool's path argument against the tool working directory.
 * There is no confinement: absolute paths and `..` reach anywhere the node's
 * user can (docs/protocol.md, "Confinement").
 */
export function resolveToolPath (workdir: string, path: string): string {
  if (path.includes('\0')) throw new ToolError('bad-params', 'path contains a NUL byte')
  return isAbsolute(path) ? resolve(path) : resolve(workdir, path)
}

/** A file-system error in words, naming the path. */
export function fsError (err: NodeJS.ErrnoException, path: string): ToolError {
  switch (err.code) {
    case 'ENOENT': return new ToolError('not-found', `no such file or directory: ${path}`)
    case 'EISDIR': return new ToolError('is-directory', `${path} is a directory`)
    case 'ENOTDIR': return new ToolError('not-a-directory', `a parent of ${path} is not a directory`)
    case 'EACCES': case 'EPERM': return new ToolError('permission-denied', `permission denied: ${path}`)
    default: return new ToolError('io-error', `${path}: ${err.message}`)
  }
}
