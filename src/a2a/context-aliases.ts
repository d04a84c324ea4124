/**
 * A2A clients may name a conversation themselves (OpenClaw's channel sends
 * `ctx-oc-<peer>` every time); clawmatrix conversations are named by their
 * first task. The first task for a client's own contextId starts a
 * clawmatrix conversation, and later messages with it continue that one.
 * Kept in memory, newest used last: after a restart, or past the bound, the
 * client's next message starts a fresh conversation.
 */
export class ContextAliases {
  /** client contextId -> clawmatrix contextId */
  private readonly byClient = new Map<string, string>()
  /** clawmatrix contextId -> client contextId */
  private readonly byTask = new Map<string, string>()

  constructor (private readonly max = 1000) {}

  /** The clawmatrix conversation a client's contextId stands for, if it has one. */
  taskContext (clientContextId: string): string | undefined {
    const taskContextId = this.byClient.get(clientContextId)
    if (taskContextId != null) {
      // Used again: move it to the end, so the least recently used goes first.
      this.byClient.delete(clientContextId)
      this.byClient.set(clientContextId, taskContextId)
    }
    return taskContextId
  }

  /** The contextId the client knows a clawmatrix conversation by. */
  clientContext (taskContextId: string): string {
    return this.byTask.get(taskContextId) ?? taskContextId
  }

  remember (clientContextId: string, taskContextId: string): void {
    if (clientContextId === taskContextId) return
    this.byClient.set(clientContextId, taskContextId)
    this.byTask.set(taskContextId, clientContextId)
    while (this.byClient.size > this.max) {
      const [oldClient, oldTask] = this.byClient.entries().next().value!
      this.byClient.delete(oldClient)
      this.byTask.delete(oldTask)
    }
  }
}
