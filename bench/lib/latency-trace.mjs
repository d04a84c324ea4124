// Preloaded (node --import) into every process of `npm run bench -- model-proxy-trace`:
// records when each stage of a request was reached, on a clock shared by the processes
// (performance.timeOrigin + performance.now(), in ms since the epoch), and writes the
// marks to $CLAWMATRIX_TRACE_DIR/<pid>.json when the process exits.
import { subscribe } from 'node:diagnostics_channel'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import net from 'node:net'

const dir = process.env.CLAWMATRIX_TRACE_DIR
if (dir != null && dir !== '') {
  const marks = []
  const at = () => performance.timeOrigin + performance.now()
  subscribe('clawmatrix:stage', stage => { marks.push([at(), stage]) })
  // Node's own: an HTTP request's head parsed by a server, and fetch() (undici) on its way out.
  subscribe('http.server.request.start', () => { marks.push([at(), 'http request in']) })
  subscribe('undici:request:create', () => { marks.push([at(), 'fetch: request created']) })
  subscribe('undici:client:sendHeaders', () => { marks.push([at(), 'fetch: head written']) })
  subscribe('undici:request:bodySent', () => { marks.push([at(), 'fetch: body written']) })
  subscribe('undici:request:headers', () => { marks.push([at(), 'fetch: response head']) })
  // When bytes really leave: a TCP socket's write, by the port it goes to, or queued while the socket still
  // connects (a connection opened for this request, not a kept one: what showed that streamed upstream
  // requests were opening a connection each).
  const writeGeneric = net.Socket.prototype._writeGeneric
  net.Socket.prototype._writeGeneric = function (writev, data, encoding, cb) {
    if (this.connecting) marks.push([at(), 'socket write queued while connecting'])
    else if (this.remotePort != null) marks.push([at(), `socket write to :${this.remotePort}`])
    return writeGeneric.call(this, writev, data, encoding, cb)
  }
  // When bytes arrive: a TCP socket's read, by the port they come from. The gap from a write in one process to
  // the read in the other is the kernel and the reader's wake-up; from the read on it is the reader's own work.
  const push = net.Socket.prototype.push
  net.Socket.prototype.push = function (chunk, encoding) {
    if (chunk != null && this.remotePort != null) marks.push([at(), `socket read from :${this.remotePort}`])
    return push.call(this, chunk, encoding)
  }
  const save = () => { writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify(marks)) }
  process.on('exit', save)
  // The upstream and Portkey's gateway leave on SIGTERM without an 'exit' event: save, then leave as they would.
  process.once('SIGTERM', () => {
    save()
    if (process.listenerCount('SIGTERM') === 0) process.exit(143)
  })
}
