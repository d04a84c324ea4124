/**
 * Where this process's resident memory is, for a soak's samples: what Node
 * reports (process.memoryUsage()), what the kernel reports (/proc/self/status,
 * /proc/self/smaps_rollup), what V8 has committed per heap space
 * (v8.getHeapSpaceStatistics()), and the resident part of the C allocator's
 * arenas, found in /proc/self/smaps by their shape (glibc only: the main
 * arena is the `[heap]` mapping; each other arena is an anonymous mapping at a
 * 64 MiB boundary, reserved 64 MiB at a time and made writable as it grows).
 * Linux only; elsewhere the kernel's figures are 0.
 */
import { readFileSync } from 'node:fs'
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8'

/** glibc's HEAP_MAX_SIZE on 64-bit: a thread arena is reserved this large, aligned to it. */
const ARENA_BYTES = 64 * 2 ** 20
const KiB = 1024

export interface ProcessMemory {
  /** process.memoryUsage(), bytes. */
  rss: number
  heapTotal: number
  heapUsed: number
  external: number
  arrayBuffers: number
  /** /proc/self/status, bytes: resident anonymous and file-backed memory. */
  rssAnon: number
  rssFile: number
  /** /proc/self/smaps_rollup, bytes. */
  pss: number
  privateDirty: number
  anonymous: number
  /** V8: physical memory of the whole heap, and what V8 itself took from malloc. */
  v8Physical: number
  v8Malloced: number
  /** V8's committed (physical) bytes per heap space, by space name. */
  spaces: Record<string, number>
  /** glibc's main arena (`[heap]`), resident bytes. */
  mainArena: number
  /** glibc's other arenas: how many, and resident bytes. */
  arenas: number
  arenasResident: number
  /** Other anonymous memory (V8's pages, large malloc blocks, thread stacks), resident bytes. */
  otherAnonymous: number
  threads: number
}

function kernelFields (path: string): Map<string, number> {
  const fields = new Map<string, number>()
  let text = ''
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return fields
  }
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+)(?: kB)?$/.exec(line)
    if (match != null) fields.set(match[1]!, Number(match[2]) * (line.endsWith(' kB') ? KiB : 1))
  }
  return fields
}

interface Mapping { start: number, end: number, perms: string, name: string, rss: number }

function mappings (): Mapping[] {
  let text = ''
  try {
    text = readFileSync('/proc/self/smaps', 'utf8')
  } catch {
    return []
  }
  const list: Mapping[] = []
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (header != null) {
      list.push({ start: parseInt(header[1]!, 16), end: parseInt(header[2]!, 16), perms: header[3]!, name: header[4]!, rss: 0 })
      continue
    }
    const rss = /^Rss:\s+(\d+) kB$/.exec(line)
    if (rss != null && list.length > 0) list.at(-1)!.rss = Number(rss[1]) * KiB
  }
  return list
}

export function processMemory (): ProcessMemory {
  const usage = process.memoryUsage()
  const status = kernelFields('/proc/self/status')
  const rollup = kernelFields('/proc/self/smaps_rollup')
  const heap = getHeapStatistics()
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map(s => [s.space_name, s.physical_space_size]))
  let mainArena = 0
  let arenas = 0
  let arenasResident = 0
  let otherAnonymous = 0
  const list = mappings()
  for (let i = 0; i < list.length; i++) {
    const m = list[i]!
    if (m.name === '[heap]') {
      mainArena += m.rss
    } else if (m.name === '' && m.start % ARENA_BYTES === 0 && m.end - m.start <= ARENA_BYTES &&
      (m.end - m.start === ARENA_BYTES || (list[i + 1]?.start === m.end && list[i + 1]?.perms === '---p' && list[i + 1]!.end - m.start === ARENA_BYTES))) {
      // An arena: its writable part, followed by the rest of its reservation (or all of it writable).
      arenas++
      arenasResident += m.rss
    } else if (m.name === '') {
      otherAnonymous += m.rss
    }
  }
  return {
    rss: usage.rss,
    heapTotal: usage.heapTotal,
    heapUsed: usage.heapUsed,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
    rssAnon: status.get('RssAnon') ?? 0,
    rssFile: status.get('RssFile') ?? 0,
    pss: rollup.get('Pss') ?? 0,
    privateDirty: rollup.get('Private_Dirty') ?? 0,
    anonymous: rollup.get('Anonymous') ?? 0,
    v8Physical: heap.total_physical_size,
    v8Malloced: heap.malloced_memory,
    spaces,
    mainArena,
    arenas,
    arenasResident,
    otherAnonymous,
    threads: status.get('Threads') ?? 0
  }
}
