import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/** The process's open file descriptors, as the kernel counts them. */
export function openDescriptors (): number {
  return readdirSync('/proc/self/fd').length
}

/** The process's descriptors that are TCP sockets, with their state (for failure messages). */
export function tcpDescriptors (): string[] {
  const states: Record<string, string> = { '01': 'ESTABLISHED', '06': 'TIME_WAIT', '08': 'CLOSE_WAIT', '0A': 'LISTEN', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '09': 'LAST_ACK' }
  const byInode = new Map<string, string>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try { text = readFileSync(table, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length > 9) byInode.set(f[9]!, `${port(f[1]!)}->${port(f[2]!)} ${states[f[3]!] ?? f[3]}`)
    }
  }
  const found: string[] = []
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = ''
    try { target = readlinkSync(`/proc/self/fd/${fd}`) } catch { continue }
    const inode = target.match(/^socket:\[(\d+)\]$/)?.[1]
    if (inode != null && byInode.has(inode)) found.push(byInode.get(inode)!)
  }
  return found.sort()
}

function port (hexAddress: string): number {
  return parseInt(hexAddress.split(':')[1]!, 16)
}
