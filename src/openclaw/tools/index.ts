import { peersTool } from './peers.js'
import { execTool, readTool, remoteTool, writeTool } from './remote.js'
import { taskTool } from './tasks.js'
import { handoffTool, sendTool } from './work.js'
import { guarded, type ClusterTool, type ToolScope } from './common.js'

export { type ClusterTool, type ToolResult, type ToolScope } from './common.js'
export { formatPeers } from './peers.js'

/** The eight cluster tools, in the order of TOOL_NAMES (../manifest.ts). */
export function clusterTools (scope: ToolScope): ClusterTool[] {
  const tools: ClusterTool[] = [
    peersTool(scope),
    handoffTool(scope),
    sendTool(scope),
    execTool(scope),
    readTool(scope),
    writeTool(scope),
    remoteTool(scope),
    taskTool(scope)
  ] as ClusterTool[]
  return tools.map(guarded)
}
