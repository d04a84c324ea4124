import type { ToolDefinition } from './tool.js'
import type { TSchema } from 'typebox'

export interface ToolSummary {
  name: string
  description: string
  parameters: TSchema
}

/**
 * The tools a node can run for others. The extension point for tools that
 * clawmatrix does not implement itself (the OpenClaw plugin routes other
 * gateway tools through here); the policy in toolProxy.allow/deny applies
 * to every registered tool alike.
 */
export class ToolRegistry {
  private readonly tools = new Map<string, ToolDefinition<any>>()
  private fallback?: (name: string) => ToolDefinition<any> | undefined

  constructor (tools: Array<ToolDefinition<any>> = []) {
    for (const tool of tools) this.register(tool)
  }

  /**
   * Resolves tools that are not registered by name, e.g. any tool of the
   * OpenClaw gateway this node runs in. Registered tools win.
   */
  setFallback (resolve: (name: string) => ToolDefinition<any> | undefined): this {
    this.fallback = resolve
    return this
  }

  /** Adds a tool; a second tool of the same name needs `replace`. */
  register<S extends TSchema> (tool: ToolDefinition<S>, options: { replace?: boolean } = {}): this {
    if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(tool.name)) {
      throw new Error(`tool name ${JSON.stringify(tool.name)} is not valid; expected letters, digits, ".", "_", ":" or "-" (at most 64)`)
    }
    if (this.tools.has(tool.name) && options.replace !== true) {
      throw new Error(`a tool named "${tool.name}" is already registered; pass { replace: true } to replace it`)
    }
    this.tools.set(tool.name, tool)
    return this
  }

  unregister (name: string): boolean {
    return this.tools.delete(name)
  }

  get (name: string): ToolDefinition<any> | undefined {
    return this.tools.get(name) ?? this.fallback?.(name)
  }

  names (): string[] {
    return [...this.tools.keys()].sort()
  }

  list (): ToolSummary[] {
    return this.names().map(name => {
      const { description, parameters } = this.tools.get(name)!
      return { name, description, parameters }
    })
  }
}
