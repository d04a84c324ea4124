import { createReadStream } from 'node:fs'
import { StringDecoder } from 'node:string_decoder'
import Type from 'typebox'
import { fsError, resolveToolPath } from './paths.js'
import type { ToolDefinition, ToolRunResult } from './tool.js'

export const ReadParams = Type.Object({
  path: Type.String({ minLength: 1, description: 'File to read; relative to the node\'s tool directory' }),
  offset: Type.Optional(Type.Integer({ minimum: 1, description: 'First line to return, counting from 1' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, description: 'Most lines to return' }))
})

/**
 * `read`: a file's text (UTF-8), from line `offset` for `limit` lines, on
 * the `content` channel with its line endings kept. Streams the file, so a
 * large one costs no memory; the output cap still applies.
 */
export const readTool: ToolDefinition<typeof ReadParams> = {
  name: 'read',
  description: 'Read a text file on this node, optionally a range of lines',
  parameters: ReadParams,
  async run (params, context): Promise<ToolRunResult> {
    const path = resolveToolPath(context.workdir, params.path)
    const first = params.offset ?? 1
    const last = params.limit == null ? Infinity : first + params.limit - 1
    const decoder = new StringDecoder('utf8')
    let line = 1
    let partial = ''
    let more = false
    const take = async (text: string): Promise<void> => {
      const pieces = (partial + text).split('\n')
      partial = pieces.pop()!
      let selected = ''
      for (const piece of pieces) {
        if (line >= first && line <= last) selected += piece + '\n'
        else if (line > last) more = true
        line++
      }
      if (selected !== '') await context.output('content', selected)
    }
    try {
      const stream = createReadStream(path, { signal: context.signal, highWaterMark: 64 * 1024 })
      for await (const chunk of stream) {
        await take(decoder.write(chunk as Buffer))
        if (line > last + 1) {
          more = true
          stream.destroy()
          break
        }
      }
      await take(decoder.end())
    } catch (err: any) {
      if (context.signal.aborted) throw err
      throw fsError(err, path)
    }
    // A last line without a newline.
    if (partial !== '') {
      if (line >= first && line <= last) await context.output('content', partial)
      else if (line > last) more = true
      line++
    }
    const lines = line - 1
    return { details: { path, firstLine: first, lastLine: Math.min(last, lines), totalLines: more ? undefined : lines, more } }
  }
}
