import { DEFAULT_LISTEN_PORT, DEFAULT_PROXY_PORT } from '../config/schema.js'
import { SECRET_ENV } from './run-node.js'

const ENDPOINT = `  --host H           the node's local endpoint host (default 127.0.0.1)
  --port N           its proxyPort (default ${DEFAULT_PROXY_PORT})
  --json             print the answer as JSON`

const WORK = `${ENDPOINT}
  --timeout SECONDS  give up (and cancel the remote work) after this long

A target is an agent id, a node id, or tags:<tag>[,<tag>] for any agent with all those tags.
The node's proxyToken, if it sets one, is read from CLAWMATRIX_PROXY_TOKEN.`

/**
 * `clawmatrix <command> --help`: what the command does and what each option
 * does. test/cli-help.test.ts checks that every command in the main usage
 * has an entry here naming each of its options.
 */
export const COMMAND_HELP: Record<string, string> = {
  demo: `usage: clawmatrix demo

Starts a local mesh of three nodes (a hub and two members, one serving a built-in demo model) in this
process, prints how to look at it (status, the mesh page) and a curl that streams the model through
another node. Needs no config; stops on Ctrl-C.`,

  node: `usage: clawmatrix node --config <file.json> [--state-dir <dir>]

Runs one cluster member until SIGINT or SIGTERM, then leaves gracefully.
  --config FILE      the node's config (JSON; the fields are in openclaw.plugin.json's configSchema)
  --state-dir DIR    where the peer key, announcement sequence and joined certificate live
                     (default $CLAWMATRIX_STATE_DIR, else ~/.clawmatrix/<nodeId>)

The secret comes from the config file or ${SECRET_ENV}, never from argv.`,

  relay: `usage: clawmatrix relay [--listen-host H] [--listen-port P] [--proxy-port P] [--node-id ID] [--state-dir D]

Runs a bare relay: a member with no agents, models or tools that listens for WebSocket connections
and relays between members that cannot listen. Stops gracefully on SIGINT or SIGTERM.
  --listen-host H    interface for WebSocket connections (default 0.0.0.0)
  --listen-port P    WebSocket port (default ${DEFAULT_LISTEN_PORT}; 0 picks a free one)
  --proxy-port P     local HTTP endpoint: status, /healthz, /metrics (default ${DEFAULT_PROXY_PORT}; on 127.0.0.1)
  --node-id ID       its name in the cluster (default relay)
  --state-dir D      where its peer key lives (default $CLAWMATRIX_STATE_DIR, else ~/.clawmatrix/<node-id>)

The secret comes from ${SECRET_ENV}, or from the state directory of a relay that joined a managed
cluster (clawmatrix join). docs/deploy.md runs it under systemd or in a container.`,

  status: `usage: clawmatrix status [--host H] [--port N] [--json]

Prints a running node's status: its peers, how each is reached, the cluster's nodes and their agents
and models, and the configured peers' dial state.
${ENDPOINT}`,

  audit: `usage: clawmatrix audit [--state-dir D | --host H --port N] [--follow] [--json]

Prints the calls this node executed for other nodes (hand-offs, messages, tool calls), one per line:
time, caller name and peer id, what ran (agent, or tool with its command or path), outcome, bytes in/out
and duration. Message bodies, tasks, prompts and the secret are never recorded.
  --state-dir D  read D/audit.jsonl directly (the node need not run); default: ask the running node
  --host H       the node's local endpoint host (default 127.0.0.1)
  --port N       the node's local endpoint port, its proxyPort (default ${DEFAULT_PROXY_PORT})
  --follow       keep printing new entries as they are appended, until Ctrl-C
  --json         one JSON object per line, as stored`,

  peers: `usage: clawmatrix peers [--host H] [--port N] [--json]

Prints a running node's live libp2p connections: direction, relayed or direct, and their open streams.
${ENDPOINT}`,

  inspect: `usage: clawmatrix inspect <url|multiaddr> [--json] [--timeout SECONDS]

Connects to a member with a throwaway identity (the secret from ${SECRET_ENV}) and prints its
identify record, a ping and its cluster view.
  --json             print the result as JSON
  --timeout SECONDS  give up after this long (default 10)`,

  init: `usage: clawmatrix init [--authority-dir D]

Creates a managed cluster's authority (its signing key) and secret. Keep the authority off the nodes.
  --authority-dir D  where to keep it (default $CLAWMATRIX_AUTHORITY_DIR, else ~/.clawmatrix/authority)`,

  invite: `usage: clawmatrix invite <nodeId> [--tags a,b] [--expires 30d] [--bootstrap URL] [--new-key] [--authority-dir D]

Prints an invite token for one node of a managed cluster: a certificate binding its name, tags and
expiry to a peer key, with the secret and where to connect.
  --tags a,b         tags the certificate grants
  --expires 30d      how long the certificate is valid (s, m, h, d)
  --bootstrap URL    a member the new node connects to first
  --new-key          issue a fresh peer key with the invite
  --authority-dir D  the authority's directory (default $CLAWMATRIX_AUTHORITY_DIR, else ~/.clawmatrix/authority)`,

  join: `usage: clawmatrix join <token|-> [--state-dir D]

Installs an invite on this machine: certificate, key and secret into the node's state directory.
"-" reads the token from stdin (so it stays out of shell history).
  --state-dir D      the node's state directory (default ~/.clawmatrix/<nodeId>)`,

  revoke: `usage: clawmatrix revoke <nodeId|peerId> [--authority-dir D] [--host H] [--port N]

Revokes a member's certificate and hands the revocation to a running node, which gossips it.
  --authority-dir D  the authority's directory (default $CLAWMATRIX_AUTHORITY_DIR, else ~/.clawmatrix/authority)
  --host H           a running member's local endpoint host (default 127.0.0.1)
  --port N           its proxyPort (default ${DEFAULT_PROXY_PORT})`,

  handoff: `usage: clawmatrix handoff <target> <task> [--context TEXT] [--timeout SECONDS] [--no-wait] [--context-id ID] [--host H] [--port N] [--json]

Hands a task to an agent on another node through a running node, waits and prints the reply.
  --context TEXT     background the receiving agent gets with the task
  --no-wait          print the task id at once instead of waiting; \`clawmatrix task <id>\` shows it later
  --context-id ID    continue that conversation: same agent, same node, its earlier turns (the target may be left out)
${WORK}`,

  task: `usage: clawmatrix task <id> [--follow] [--message TEXT] [--cancel] [--host H] [--port N] [--json]

Shows a task started from this node (docs/tasks.md): its state, progress and answer.
  --follow           print progress as it comes, until the task ends or asks for input
  --message TEXT     answer the task's question (it resumes), or follow up a finished one in its conversation
  --cancel           cancel it; says plainly when the remote run cannot be stopped
${ENDPOINT}`,

  tasks: `usage: clawmatrix tasks [--host H] [--port N] [--json]

Lists the tasks started from this node, newest first.
${ENDPOINT}`,

  send: `usage: clawmatrix send <target> <message> [--host H] [--port N] [--json]

Delivers a one-way message to an agent on another node through a running node.
${WORK}`,

  exec: `usage: clawmatrix exec <node> <command> [--workdir DIR] [--timeout SECONDS] [--host H] [--port N] [--json]

Runs a shell command on another node (within its tool policy), prints its output and exits with the
remote exit code.
  --workdir DIR      working directory on the remote node
${WORK}`,

  read: `usage: clawmatrix read <node> <path> [--offset LINE] [--limit LINES] [--host H] [--port N] [--json]

Prints a file of another node (within its tool policy).
  --offset LINE      first line to print (1-based)
  --limit LINES      how many lines
${WORK}`,

  write: `usage: clawmatrix write <node> <path> [--content TEXT | --from FILE | stdin] [--host H] [--port N] [--json]

Writes a file on another node (within its tool policy).
  --content TEXT     the file's content
  --from FILE        read the content from a local file (otherwise from stdin)
${WORK}`,

  tool: `usage: clawmatrix tool <node> <tool> <json-args> [--timeout SECONDS] [--host H] [--port N] [--json]

Calls any tool another node offers with JSON arguments, e.g. clawmatrix tool office edit '{"path":...}'.
${WORK}`
}

/** Whether argv asks for help: --help or -h anywhere among a command's arguments. */
export function wantsHelp (args: string[]): boolean {
  return args.includes('--help') || args.includes('-h')
}
