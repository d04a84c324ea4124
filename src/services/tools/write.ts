import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import Type from 'typebox'
import { fsError, resolveToolPath } from './paths.js'
import type { ToolDefinition, ToolRunResult } from './tool.js'

export const WriteParams = Type.Object({
  path: Type.String({ minLength: 1, description: 'File to write; relative to the node\'s tool directory' }),
  content: Type.String({ description: 'The whole new content (UTF-8)' })
})

/** `write`: replaces (or creates) a file with `content`, creating missing folders. */
export const writeTool: ToolDefinition<typeof WriteParams> = {
  name: 'write',
  description: 'Write a text file on this node, creating missing folders',
  parameters: WriteParams,
  async run (params, context): Promise<ToolRunResult> {
    const path = resolveToolPath(context.workdir, params.path)
    try {
      await mkdir(dirname(path), { recursive: true })
      await writeFile(path, params.content, { signal: context.signal })
    } catch (err: any) {
      if (context.signal.aborted) throw err
      throw fsError(err, path)
    }
    const bytes = Buffer.byteLength(params.content)
    await context.output('content', `wrote ${bytes} bytes to ${path}\n`)
    return { details: { path, bytes } }
  }
}
