#!/usr/bin/env node
/**
 * Summarizes V8 .cpuprofile files (node --cpu-prof; the cluster bench writes
 * one per host with CLAWMATRIX_BENCH_CPU_PROF=<dir>): where the samples were
 * spent, by package and by function, self and inclusive.
 *
 *   node scripts/cpuprofile-summary.mjs [--top 25] [--since-ms 0] [--focus REGEX] [--callers REGEX] <file.cpuprofile>...
 *
 * Several files are added together (e.g. all member hosts). "self" is the
 * time a function was on top of the stack; "inclusive" the time it was
 * anywhere on it (counted once per sample, so recursion does not inflate it).
 * A package is the node_modules package a function's file belongs to,
 * `clawmatrix` for dist/, `node:` for Node's own JavaScript, `(native)` for
 * V8 builtins and C++ without a script, and `(gc)`, `(idle)`, `(program)`.
 * `--since-ms` drops the samples of the first milliseconds of each profile
 * (module loading, a warm-up). `--focus` keeps only the samples with a
 * function matching REGEX on their stack: what a function's time is made of.
 * `--callers REGEX`: who calls the matching functions, with the time spent in
 * them on behalf of each caller.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' }, 'since-ms': { type: 'string', default: '0' }, focus: { type: 'string' }, callers: { type: 'string' } }
})
const top = Number(values.top)
const sinceUs = Number(values['since-ms']) * 1000
const focus = values.focus == null ? undefined : new RegExp(values.focus)
const callersOf = values.callers == null ? undefined : new RegExp(values.callers)
/** With --callers: the time of each caller of the functions matching it (the nearest frame outside them). */
const byCaller = new Map()
if (positionals.length === 0) {
  console.error('usage: node scripts/cpuprofile-summary.mjs [--top N] [--since-ms MS] <file.cpuprofile>...')
  process.exit(2)
}

function packageOf (url, functionName) {
  if (url === '' || url == null) {
    if (functionName.startsWith('(')) return functionName
    return '(native)'
  }
  if (url.startsWith('node:')) return 'node:'
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  if (url.includes('/dist/')) return 'clawmatrix'
  if (url.includes('/bench/build/')) return 'bench'
  return url.replace(/^file:\/\//, '')
}

function shortUrl (url) {
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length)
  const dist = url.indexOf('/dist/')
  if (dist >= 0) return url.slice(dist + 1)
  return url.replace(/^file:\/\//, '')
}

const selfByFn = new Map()
const inclByFn = new Map()
const selfByPkg = new Map()
const inclByPkg = new Map()
let totalUs = 0
let wallUs = 0
const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us)

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const nodes = new Map(profile.nodes.map(n => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const info = new Map()
  for (const n of profile.nodes) {
    const { functionName, url, lineNumber } = n.callFrame
    const name = functionName === '' ? '(anonymous)' : functionName
    const pkg = packageOf(url, name)
    const fn = url === '' ? `${name} [${pkg}]` : `${name} ${shortUrl(url)}:${lineNumber + 1}`
    info.set(n.id, { fn, pkg })
  }
  // The frames of each node's stack, computed once per node.
  const stacks = new Map()
  const callerOf = id => {
    let inside = false
    for (let at = id; at != null; at = parent.get(at)) {
      const { fn } = info.get(at)
      if (callersOf.test(fn)) inside = true
      else if (inside) return fn
    }
    return undefined
  }
  const stackOf = id => {
    let s = stacks.get(id)
    if (s != null) return s
    const fns = new Set()
    const pkgs = new Set()
    for (let at = id; at != null; at = parent.get(at)) {
      const i = info.get(at)
      if (i.fn.startsWith('(root)')) continue
      fns.add(i.fn)
      pkgs.add(i.pkg)
    }
    s = { fns, pkgs }
    stacks.set(id, s)
    return s
  }
  let t = profile.startTime
  wallUs += profile.endTime - profile.startTime - sinceUs
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0
    t += dt
    if (t - profile.startTime < sinceUs) continue
    const id = profile.samples[i]
    const self = info.get(id)
    if (self == null || nodes.get(id) == null) continue
    // A sample's weight is the time to the next one (the last sample gets the previous interval).
    const us = profile.timeDeltas[i + 1] ?? dt
    if (self.pkg === '(idle)') continue
    const { fns, pkgs } = stackOf(id)
    if (focus != null && ![...fns].some(f => focus.test(f))) continue
    totalUs += us
    add(selfByFn, self.fn, us)
    add(selfByPkg, self.pkg, us)
    if (callersOf != null) {
      const caller = callerOf(id)
      if (caller != null) add(byCaller, caller, us)
    }
    for (const f of fns) add(inclByFn, f, us)
    for (const p of pkgs) add(inclByPkg, p, us)
  }
}

const s = us => (us / 1e6).toFixed(2).padStart(8)
const pct = us => `${(100 * us / totalUs).toFixed(1).padStart(5)}%`
const table = (title, map, n) => {
  console.log(`\n${title}`)
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${s(us)} s ${pct(us)}  ${k}`)
}
console.log(`${positionals.length} profile(s)${focus == null ? '' : ` focused on ${focus}`}: ${(totalUs / 1e6).toFixed(1)} s of CPU samples (idle excluded) in ${(wallUs / 1e6).toFixed(1)} s of wall time (summed over profiles)`)
if (callersOf != null) table(`callers of ${callersOf} (time spent in it from each)`, byCaller, top)
table('self time by package', selfByPkg, top)
table('inclusive time by package (a sample counts for every package on its stack)', inclByPkg, top)
table('self time by function', selfByFn, top)
table('inclusive time by function', inclByFn, top)
