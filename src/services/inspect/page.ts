/**
 * `GET /clawmatrix/`: a picture of the mesh, self-contained (inline style and
 * script, SVG drawn in the page, no external assets), polling
 * `/clawmatrix/status` and `/clawmatrix/mesh` every few seconds.
 *
 * Everything a peer announced is put on the page with `textContent`, never as
 * markup, so a member's card cannot inject script into an operator's browser.
 */

/** Allows the inline style and script and requests to this server only. */
export const PAGE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"

export function meshPage (refreshMs: number): string {
  return PAGE.replace('__REFRESH_MS__', String(refreshMs))
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clawmatrix mesh</title>
<style>
  :root {
    --bg: #0e1016; --panel: #151922; --line: #262c39; --text: #e7e9ef; --muted: #8a92a6;
    --self: #8b7cff; --direct: #34c77b; --relayed: #f0a93b; --unreachable: #ef5a5f;
  }
  * { box-sizing: border-box; }
  html, body { height: 100%; }
  body { margin: 0; display: flex; flex-direction: column; background: var(--bg); color: var(--text); font: 14px/1.45 ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  header { display: flex; align-items: center; gap: 16px; padding: 14px 22px; border-bottom: 1px solid var(--line); background: var(--panel); }
  header h1 { margin: 0; font-size: 17px; font-weight: 650; letter-spacing: .2px; }
  header h1 span { color: var(--self); }
  header .where { color: var(--muted); }
  header .where b { color: var(--text); font-weight: 600; }
  header .live { margin-left: auto; display: flex; align-items: center; gap: 8px; color: var(--muted); font-size: 13px; }
  .dot { width: 9px; height: 9px; border-radius: 50%; background: var(--direct); box-shadow: 0 0 0 3px rgba(52,199,123,.18); }
  .stale .dot { background: var(--unreachable); box-shadow: 0 0 0 3px rgba(239,90,95,.2); }
  main { flex: 1; min-height: 0; display: grid; grid-template-columns: minmax(0, 1fr) 380px; }
  #graph { position: relative; border-right: 1px solid var(--line); }
  svg { position: absolute; inset: 0; width: 100%; height: 100%; display: block; }
  .edge { stroke: #4a5367; stroke-width: 2; }
  .edge.self { stroke: #7d88a3; stroke-width: 2.5; }
  .edge.relayed { stroke: var(--relayed); stroke-dasharray: 7 6; opacity: .9; }
  .edge-label { fill: var(--muted); font-size: 11.5px; paint-order: stroke; stroke: var(--bg); stroke-width: 6px; stroke-linejoin: round; }
  .node circle.ring { fill: var(--panel); stroke-width: 3; }
  .node.self circle.ring { stroke: var(--self); }
  .node.direct circle.ring { stroke: var(--direct); }
  .node.relayed circle.ring { stroke: var(--relayed); }
  .node.unreachable circle.ring { stroke: var(--unreachable); stroke-dasharray: 4 4; }
  .node circle.halo { fill: none; stroke: var(--self); stroke-opacity: .25; stroke-width: 8; }
  .node .initial { fill: var(--text); font-size: 20px; font-weight: 650; text-anchor: middle; dominant-baseline: central; }
  .node .name, .node .offers { text-anchor: middle; paint-order: stroke; stroke: var(--bg); stroke-width: 6px; stroke-linejoin: round; }
  .node .name { fill: var(--text); font-size: 14px; font-weight: 600; }
  .node .offers { fill: var(--muted); font-size: 11.5px; }
  .legend { position: absolute; left: 18px; bottom: 14px; display: flex; gap: 16px; color: var(--muted); font-size: 12px; }
  .legend i { display: inline-block; width: 22px; height: 0; border-top: 2px solid #7d88a3; vertical-align: middle; margin-right: 6px; }
  .legend i.relayed { border-top: 2px dashed var(--relayed); }
  .legend b { display: inline-block; width: 10px; height: 10px; border-radius: 50%; border: 2px solid; vertical-align: -1px; margin-right: 6px; }
  aside { padding: 16px 18px; overflow-y: auto; min-height: 0; }
  aside h2 { margin: 0 0 10px; font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .8px; color: var(--muted); }
  .card { border: 1px solid var(--line); border-radius: 10px; padding: 11px 13px; margin-bottom: 10px; background: var(--panel); }
  .card .top { display: flex; align-items: baseline; gap: 8px; }
  .card .top strong { font-size: 15px; }
  .badge { font-size: 11px; padding: 1px 7px; border-radius: 999px; border: 1px solid; }
  .badge.self { color: var(--self); } .badge.direct { color: var(--direct); } .badge.relayed { color: var(--relayed); } .badge.unreachable { color: var(--unreachable); }
  .card .rtt { margin-left: auto; color: var(--muted); font-variant-numeric: tabular-nums; font-size: 12.5px; }
  dl { display: grid; grid-template-columns: 74px 1fr; gap: 2px 8px; margin: 8px 0 0; font-size: 12.5px; }
  dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
  .empty { color: #596175; }
  .error { margin: 12px 18px; padding: 10px 12px; border: 1px solid var(--unreachable); border-radius: 8px; color: var(--unreachable); display: none; }
  .stale .error { display: block; }
</style>
</head>
<body>
<header>
  <h1><span>claw</span>matrix mesh</h1>
  <div class="where">seen from <b id="self">…</b> <span id="meta"></span></div>
  <div class="live"><div class="dot"></div><span id="updated">connecting…</span></div>
</header>
<div class="error" id="error"></div>
<main>
  <section id="graph">
    <svg id="svg" role="img" aria-label="the cluster mesh"></svg>
    <div class="legend">
      <span><i></i>direct link</span><span><i class="relayed"></i>relayed link</span>
      <span><b style="border-color: var(--self)"></b>this node</span>
      <span><b style="border-color: var(--direct)"></b>reached directly</span>
      <span><b style="border-color: var(--relayed)"></b>through a relay</span>
      <span><b style="border-color: var(--unreachable)"></b>unreachable</span>
    </div>
  </section>
  <aside><h2 id="count">nodes</h2><div id="cards"></div></aside>
</main>
<script>
'use strict'
const REFRESH_MS = __REFRESH_MS__
const SVG_NS = 'http://www.w3.org/2000/svg'

function el (tag, attrs, text) {
  const node = tag === 'svg' || ['g', 'line', 'circle', 'text', 'title'].includes(tag)
    ? document.createElementNS(SVG_NS, tag) : document.createElement(tag)
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value))
  if (text != null) node.textContent = text
  return node
}

function plural (n, word) { return n + ' ' + word + (n === 1 ? '' : 's') }

function offers (node) {
  const parts = []
  if (node.agents.length > 0) parts.push(plural(node.agents.length, 'agent'))
  if (node.models.length > 0) parts.push(plural(node.models.length, 'model'))
  if (node.toolProxy.enabled) parts.push('tools')
  return parts.length > 0 ? parts.join(' · ') : 'offers nothing'
}

function tools (node) {
  if (!node.toolProxy.enabled) return 'off'
  const allow = node.toolProxy.allow.length === 0 || node.toolProxy.allow.includes('*') ? 'all' : node.toolProxy.allow.join(', ')
  return node.toolProxy.deny.length > 0 ? allow + ' (not ' + node.toolProxy.deny.join(', ') + ')' : allow
}

function ago (iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  return s < 60 ? s + ' s ago' : Math.round(s / 60) + ' min ago'
}

// This page is browser JavaScript served as text: it cannot import pathText
// (src/services/cluster/routing.ts), so it keeps this copy, with short peer ids.
function pathText (reach, via) {
  return reach === 'relayed' ? 'relayed via ' + ((via && (via.nodeId || via.peerId.slice(-8))) || 'a relay') : reach
}

function reachText (node) {
  const how = pathText(node.reach, node.via)
  if (node.reach === 'self') return 'this node'
  return node.reach === 'unreachable' || node.connected !== false ? how : how + ' (on demand)'
}

function lastReachedText (node) {
  const last = node.lastReached
  if (node.self || last == null) return 'never'
  const how = pathText(last.reach, last.via)
  return node.connected ? how + ', connected now' : how + ', ' + ago(last.at)
}

/** Places this node first and the rest by name around a circle, so positions stay put between refreshes. */
function layout (nodes, width, height) {
  const ordered = [...nodes].sort((a, b) => (b.self - a.self) || a.nodeId.localeCompare(b.nodeId))
  const cx = width / 2, cy = height / 2 - 10
  const radius = Math.max(90, Math.min(width * 0.8, height) / 2 - 95)
  const positions = new Map()
  ordered.forEach((node, i) => {
    if (ordered.length === 1) { positions.set(node.peerId, [cx, cy]); return }
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / ordered.length
    positions.set(node.peerId, [cx + radius * Math.cos(angle), cy + radius * Math.sin(angle)])
  })
  return positions
}

/** One edge per connected pair. This node's links are live; the others come from the cards. */
function edges (status, mesh, byPeer) {
  const result = new Map()
  const self = status.peerId
  for (const [from, links] of Object.entries(mesh.links)) {
    for (const link of links) {
      if (!byPeer.has(from) || !byPeer.has(link.peerId)) continue
      const key = [from, link.peerId].sort().join(' ')
      const existing = result.get(key)
      const touchesSelf = from === self || link.peerId === self
      if (existing == null) result.set(key, { a: from, b: link.peerId, relayed: link.relayed, self: touchesSelf })
      else if (from === self || (!existing.self && !link.relayed)) existing.relayed = link.relayed
    }
  }
  return [...result.values()]
}

function drawGraph (status, mesh) {
  const svg = document.getElementById('svg')
  const box = svg.getBoundingClientRect()
  const width = Math.max(box.width, 420), height = Math.max(box.height, 420)
  svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height)
  svg.replaceChildren()
  const byPeer = new Map(status.cluster.map(n => [n.peerId, n]))
  const positions = layout(status.cluster, width, height)

  const edgeLayer = el('g')
  const labelLayer = el('g')
  for (const edge of edges(status, mesh, byPeer)) {
    const [x1, y1] = positions.get(edge.a), [x2, y2] = positions.get(edge.b)
    const names = [byPeer.get(edge.a).nodeId, byPeer.get(edge.b).nodeId].sort()
    edgeLayer.append(el('line', {
      x1, y1, x2, y2,
      class: 'edge' + (edge.relayed ? ' relayed' : '') + (edge.self ? ' self' : ''),
      'data-edge': names.join(' '),
      'data-relayed': edge.relayed
    }))
    const other = edge.self ? byPeer.get(edge.a === status.peerId ? edge.b : edge.a) : undefined
    const label = other != null && other.rttMs != null ? other.rttMs + ' ms' : ''
    const via = edge.relayed && other != null && other.via != null ? 'via ' + (other.via.nodeId || 'relay') : (edge.relayed ? 'relayed' : '')
    const text = [label, via].filter(Boolean).join(' · ')
    if (text !== '') {
      // Beside the line, on the side away from the middle of the picture.
      const length = Math.hypot(x2 - x1, y2 - y1) || 1
      let nx = (y1 - y2) / length, ny = (x2 - x1) / length
      const mx = (x1 + x2) / 2, my = (y1 + y2) / 2
      if ((mx + nx - width / 2) ** 2 + (my + ny - height / 2) ** 2 < (mx - width / 2) ** 2 + (my - height / 2) ** 2) { nx = -nx; ny = -ny }
      labelLayer.append(el('text', { x: mx + 16 * nx, y: my + 16 * ny + 4, class: 'edge-label', 'text-anchor': nx > 0.3 ? 'start' : nx < -0.3 ? 'end' : 'middle' }, text))
    }
  }
  svg.append(edgeLayer, labelLayer)

  for (const node of status.cluster) {
    const [x, y] = positions.get(node.peerId)
    const group = el('g', { class: 'node ' + node.reach, 'data-node-id': node.nodeId, transform: 'translate(' + x + ',' + y + ')' })
    group.append(el('title', {}, node.nodeId + ' (' + node.peerId + ')'))
    if (node.self) group.append(el('circle', { r: 34, class: 'halo' }))
    group.append(el('circle', { r: 28, class: 'ring' }))
    group.append(el('text', { class: 'initial' }, node.nodeId.charAt(0).toUpperCase()))
    group.append(el('text', { y: 50, class: 'name' }, node.nodeId))
    group.append(el('text', { y: 66, class: 'offers' }, offers(node)))
    if (node.tags.length > 0) group.append(el('text', { y: 81, class: 'offers' }, node.tags.map(t => '#' + t).join(' ')))
    svg.append(group)
  }
}

function row (dl, label, values) {
  dl.append(el('dt', {}, label))
  const text = Array.isArray(values) ? values.join(', ') : values
  dl.append(el('dd', text === '' ? { class: 'empty' } : {}, text === '' ? 'none' : text))
}

function drawCards (status) {
  const ordered = [...status.cluster].sort((a, b) => (b.self - a.self) || a.nodeId.localeCompare(b.nodeId))
  document.getElementById('count').textContent = plural(ordered.length, 'node')
  document.getElementById('cards').replaceChildren(...ordered.map(node => {
    const card = el('div', { class: 'card', 'data-card': node.nodeId })
    const top = el('div', { class: 'top' })
    top.append(el('strong', {}, node.nodeId), el('span', { class: 'badge ' + node.reach }, reachText(node)))
    top.append(el('span', { class: 'rtt' }, node.rttMs != null ? node.rttMs + ' ms' : ''))
    const dl = el('dl')
    row(dl, 'agents', node.agents.map(a => a.id))
    row(dl, 'models', node.models.map(m => m.id))
    row(dl, 'tags', node.tags)
    row(dl, 'tools', tools(node))
    if (!node.self) row(dl, 'last reached', lastReachedText(node))
    row(dl, 'activity', node.inFlight + ' in flight' + (node.self ? '' : ' · seen ' + ago(node.lastSeen)))
    row(dl, 'peer id', node.peerId)
    card.append(top, dl)
    return card
  }))
}

// A node with a proxyToken: open the page as /clawmatrix/#token=<proxyToken>; the fragment never leaves the browser.
const token = new URLSearchParams(location.hash.slice(1)).get('token')

async function getJson (path) {
  const res = await fetch(path, { cache: 'no-store', headers: token == null ? {} : { authorization: 'Bearer ' + token } })
  if (!res.ok) throw new Error(path + ': HTTP ' + res.status)
  return res.json()
}

async function refresh () {
  try {
    const [status, mesh] = await Promise.all([getJson('status'), getJson('mesh')])
    document.body.classList.remove('stale')
    document.getElementById('self').textContent = status.nodeId
    document.getElementById('meta').textContent = '· clawmatrix ' + status.version + ' · ' + plural(status.peers.length, 'connection')
    document.getElementById('updated').textContent = 'live · updated ' + new Date().toLocaleTimeString()
    last = [status, mesh]
    drawGraph(status, mesh)
    drawCards(status)
  } catch (err) {
    document.body.classList.add('stale')
    document.getElementById('updated').textContent = 'not answering'
    document.getElementById('error').textContent = 'The node did not answer (' + err.message + '); retrying every ' + REFRESH_MS / 1000 + ' s.'
  }
}

let last
refresh()
setInterval(refresh, REFRESH_MS)
window.addEventListener('resize', () => { if (last != null) drawGraph(last[0], last[1]) })
</script>
</body>
</html>
`
