import { editTool } from './edit.js'
import { execTool } from './exec.js'
import { readTool } from './read.js'
import { ToolRegistry } from './registry.js'
import { writeTool } from './write.js'
import type { ToolDefinition } from './tool.js'

/** The tools clawmatrix implements itself. */
export const BUILTIN_TOOLS: Array<ToolDefinition<any>> = [execTool, readTool, writeTool, editTool]

/** A registry holding the built-in tools, ready for more to be registered. */
export function builtinToolRegistry (): ToolRegistry {
  return new ToolRegistry(BUILTIN_TOOLS)
}
