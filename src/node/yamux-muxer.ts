/**
 * `@libp2p/yamux` with a stream's receive window granted back in halves.
 *
 * In @libp2p/yamux 8.0.3 a stream answers every data frame it receives with
 * a window update for exactly that frame's bytes. A model answer streamed as
 * a frame per upstream read thus sends as many window updates back as it
 * received frames: each a muxer frame, a Noise message, a WebSocket frame and
 * a socket write on the receiver, and a read, decrypt and decode on the
 * sender, for a window that was nowhere near used up. The Go yamux the spec
 * comes from (hashicorp/yamux) sends one only once half the window is used
 * (docs/upstream-yamux-window-updates.md describes it for upstream).
 *
 * This wrapper leaves the wire format and the window sizes alone: an update
 * still carries every byte consumed since the last one, the SYN and ACK
 * flags still go out at once, and a sender is never blocked (it still holds
 * half a window, 128 KiB at least, when the update is sent).
 */
import { yamux, type YamuxMuxerInit } from '@libp2p/yamux'
import type { StreamMuxer, StreamMuxerFactory } from '@libp2p/interface'

export interface YamuxInit extends YamuxMuxerInit {
  /**
   * Send a stream's window update only once the remote used half its
   * receive window (or a SYN/ACK flag must go out); false: after every data
   * frame, as published (to measure it).
   *
   * @default true
   */
  halfWindowUpdates?: boolean
}

export function yamuxMuxer (init: YamuxInit = {}): () => StreamMuxerFactory {
  const { halfWindowUpdates, ...yamuxInit } = init
  const create = yamux(yamuxInit)
  if (halfWindowUpdates === false) return create
  return () => {
    const factory = create()
    return {
      protocol: factory.protocol,
      createStreamMuxer: maConn => halvingUpdates(factory.createStreamMuxer(maConn))
    }
  }
}

/**
 * The fields of @libp2p/yamux 8's YamuxStream this relies on (not exported).
 * `state`: 0 Init and 2 SYNReceived mean the next frame carries SYN or ACK.
 */
interface YamuxStreamFields {
  state: number
  recvWindow: number
  recvWindowCapacity: number
  sendWindowUpdate: () => void
}

const STATE_INIT = 0
const STATE_SYN_RECEIVED = 2

function halvingUpdates (muxer: StreamMuxer): StreamMuxer {
  const target = muxer as unknown as { _newStream?: (...args: unknown[]) => unknown }
  const newStream = target._newStream
  // Another yamux version: leave it as it is rather than guess at its fields.
  if (typeof newStream !== 'function') return muxer
  target._newStream = (...args: unknown[]) => {
    const stream = newStream.apply(muxer, args) as YamuxStreamFields
    const sendWindowUpdate = stream.sendWindowUpdate
    if (typeof sendWindowUpdate === 'function' && typeof stream.recvWindow === 'number') {
      stream.sendWindowUpdate = () => {
        if (stream.state !== STATE_INIT && stream.state !== STATE_SYN_RECEIVED && stream.recvWindowCapacity > stream.recvWindow / 2) return
        sendWindowUpdate.call(stream)
      }
    }
    return stream
  }
  return muxer
}
