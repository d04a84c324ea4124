import { readFile, writeFile } from 'node:fs/promises'
import Type from 'typebox'
import { fsError, resolveToolPath } from './paths.js'
import { type ToolDefinition, type ToolRunResult } from './tool.js'
import { ToolError } from '../errors.js'

export const EditParams = Type.Object({
  path: Type.String({ minLength: 1, description: 'File to edit; relative to the node\'s tool directory' }),
  oldText: Type.String({ minLength: 1, description: 'Exact text to replace; must occur exactly once' }),
  newText: Type.String({ description: 'Replacement text' })
})

/**
 * `edit`: replaces the one exact occurrence of `oldText`. Fails, changing
 * nothing, when the text is absent or occurs more than once, since then the
 * caller's intent is unclear.
 */
export const editTool: ToolDefinition<typeof EditParams> = {
  name: 'edit',
  description: 'Replace one exact, unique piece of text in a file on this node',
  parameters: EditParams,
  async run (params, context): Promise<ToolRunResult> {
    const path = resolveToolPath(context.workdir, params.path)
    let text: string
    try {
      text = await readFile(path, { encoding: 'utf8', signal: context.signal })
    } catch (err: any) {
      if (context.signal.aborted) throw err
      throw fsError(err, path)
    }
    const at = text.indexOf(params.oldText)
    if (at === -1) {
      throw new ToolError('no-match', `the old text was not found in ${path}; nothing was changed`)
    }
    const count = occurrences(text, params.oldText)
    if (count > 1) {
      throw new ToolError('ambiguous-match', `the old text occurs ${count} times in ${path}; include more surrounding text so it occurs once. Nothing was changed`)
    }
    const line = text.slice(0, at).split('\n').length
    try {
      await writeFile(path, text.slice(0, at) + params.newText + text.slice(at + params.oldText.length), { signal: context.signal })
    } catch (err: any) {
      if (context.signal.aborted) throw err
      throw fsError(err, path)
    }
    await context.output('content', `replaced 1 occurrence at line ${line} of ${path}\n`)
    return { details: { path, line } }
  }
}

/** Non-overlapping occurrences, as a replace would see them. */
function occurrences (text: string, needle: string): number {
  let count = 0
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) count++
  return count
}
