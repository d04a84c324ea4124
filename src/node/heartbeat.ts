import { TypedEventEmitter } from 'main-event'
import type { Logger, PeerId, Startable } from '@libp2p/interface'
import { WakefulDeadline } from './wakeful-deadline.js'
import type { Swarm } from './swarm.js'

export interface HeartbeatInit {
  intervalMs: number
  maxMissed: number
}

export interface PeerLiveness {
  /** Round-trip time of the last answered beat. */
  rttMs?: number
  /** When the peer last answered a beat (epoch ms). */
  lastSeen?: number
  /** Beats missed in a row. */
  missed: number
}

export interface HeartbeatEvents {
  /** A peer missed `maxMissed` beats in a row and its connections were closed. */
  'peer:unresponsive': CustomEvent<PeerId>
}

/**
 * Pings every connected peer each `intervalMs`. A peer that misses
 * `maxMissed` beats in a row has its connections aborted (a frozen peer
 * would never answer a graceful close) and is reported unresponsive.
 *
 * A beat's ping may take the whole budget (`intervalMs * maxMissed`,
 * measured wakefully): a peer whose answers come later than one interval,
 * on a loaded machine or a busy connection, is alive. While it is
 * outstanding, the beats that find it unanswered count as missed; a peer
 * is given up when it stayed silent for the whole budget, or when
 * `maxMissed` pings in a row failed outright.
 */
export class Heartbeat extends TypedEventEmitter<HeartbeatEvents> implements Startable {
  private readonly log: Logger
  private readonly liveness = new Map<string, PeerLiveness>()
  /**
   * Beats under way, by peer. Ping allows one outbound stream per connection
   * at a time: a beat and a check of one peer never overlap (the second
   * would fail at once with "too many outbound protocol streams").
   */
  private readonly inFlight = new Map<string, Promise<void>>()
  private readonly checks = new Map<string, Promise<boolean>>()
  private readonly controller = new AbortController()
  private timer?: ReturnType<typeof setInterval>

  constructor (private readonly swarm: Swarm, private readonly init: HeartbeatInit) {
    super()
    this.log = swarm.logger.forComponent('clawmatrix:heartbeat')
  }

  start (): void {
    this.swarm.addEventListener('peer:connect', this.onConnect)
    this.swarm.addEventListener('peer:disconnect', this.onDisconnect)
    this.timer = setInterval(() => { this.beat() }, this.init.intervalMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.controller.abort()
    this.swarm.removeEventListener('peer:connect', this.onConnect)
    this.swarm.removeEventListener('peer:disconnect', this.onDisconnect)
  }

  /** Liveness of a connected peer, if it was beaten at least once. */
  get (peer: PeerId): PeerLiveness | undefined {
    return this.liveness.get(peer.toString())
  }

  /** Checks (see `check`) running now. */
  get checking (): number {
    return this.checks.size
  }

  /**
   * Checks now whether this node still reaches `peer`: one ping over any
   * connection it has (relayed included), else over a fresh dial to the
   * addresses it knows. True when the peer answered within the heartbeat's
   * budget (`intervalMs * maxMissed`, measured wakefully). Concurrent checks of one
   * peer share one ping, so a flood of hints costs one round trip.
   */
  async check (peer: PeerId): Promise<boolean> {
    const key = peer.toString()
    let pending = this.checks.get(key)
    if (pending == null) {
      // As patient as the heartbeat itself, and as wakeful as a beat: a check asked just before the host's
      // synchronous work (an OpenClaw gateway's state writes) must not call a peer dead whose answer came meanwhile.
      const deadline = new WakefulDeadline(this.budgetMs, { signal: this.controller.signal })
      const beat = this.inFlight.get(key) ?? Promise.resolve()
      pending = beat.then(async () => this.swarm.services.ping.ping(peer, { signal: deadline.signal })).then(rttMs => {
        const state = this.liveness.get(key)
        if (state != null) Object.assign(state, { rttMs, lastSeen: Date.now(), missed: 0 })
        return true
      }, (err: any) => {
        this.log('check of %p failed: %s', peer, err.message)
        return false
      }).finally(() => {
        deadline.clear()
        this.checks.delete(key)
      })
      this.checks.set(key, pending)
    }
    return pending
  }

  /** How long a beat or a check waits for a peer's answer: the maxMissed beats it is given. */
  private get budgetMs (): number {
    return this.init.intervalMs * this.init.maxMissed
  }

  /** A new peer is beaten at once, so routing knows its round-trip time from the start. */
  private readonly onConnect = (event: CustomEvent<PeerId>): void => {
    this.beatOnce(event.detail)
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    this.liveness.delete(event.detail.toString())
  }

  private beat (): void {
    const peers = this.swarm.getPeers()
    // A beat that ended after its peer's disconnect may have put it back: forget it with the next one.
    if (this.liveness.size > peers.length) {
      const connected = new Set(peers.map(String))
      for (const key of this.liveness.keys()) if (!connected.has(key) && !this.inFlight.has(key)) this.liveness.delete(key)
    }
    for (const peer of peers) this.beatOnce(peer)
  }

  private beatOnce (peer: PeerId): void {
    const key = peer.toString()
    // A check under way is this beat's ping too (it updates the liveness when answered).
    if (this.checks.has(key)) return
    if (this.inFlight.has(key)) {
      // The last beat is still unanswered: one more missed, shown in status; its deadline decides.
      const state = this.liveness.get(key)
      if (state != null) state.missed++
      return
    }
    this.inFlight.set(key, this.beatPeer(peer).finally(() => this.inFlight.delete(key)))
  }

  private async beatPeer (peer: PeerId): Promise<void> {
    const key = peer.toString()
    const state = this.liveness.get(key) ?? { missed: 0 }
    this.liveness.set(key, state)
    // Not one interval: 20 model streams through a relay at load 18 made pings take over a second, and
    // three 1 s timeouts in a row closed the connection under the streams. Wakeful: a process that was
    // not running does not count the time against the peer (the answer may be waiting in the socket).
    const deadline = new WakefulDeadline(this.budgetMs, { signal: this.controller.signal })
    try {
      state.rttMs = await this.swarm.services.ping.ping(peer, { signal: deadline.signal })
      state.lastSeen = Date.now()
      state.missed = 0
    } catch (err: any) {
      if (this.controller.signal.aborted) return
      // Silent for the whole budget; otherwise the ping failed outright (a reset stream): one beat missed.
      state.missed = deadline.expired ? Math.max(state.missed + 1, this.init.maxMissed) : state.missed + 1
      this.log('peer %p missed beat %d of %d: %s', peer, state.missed, this.init.maxMissed, err.message)
      if (state.missed >= this.init.maxMissed) {
        this.liveness.delete(key)
        for (const connection of this.swarm.getConnections(peer)) {
          connection.abort(new Error(`missed ${state.missed} heartbeats`))
        }
        this.safeDispatchEvent('peer:unresponsive', { detail: peer })
      }
    } finally {
      deadline.clear()
    }
  }
}
