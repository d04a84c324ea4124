/**
 * `@libp2p/noise` with a length decoder that does not build an error per message.
 *
 * In @libp2p/noise 17.0.3 a secured connection splits what it receives into
 * Noise messages with @libp2p/utils' `LengthPrefixedDecoder`, whose length
 * decoder (`uint16BEDecode`) throws a new `RangeError` when fewer than 2
 * bytes are buffered, which the decoder catches to mean "wait for more".
 * After every message it has consumed, the buffer is empty, so every message
 * received constructs (with a stack trace) and catches one RangeError before
 * it reaches the muxer: 3-6% of a hop's receiving segments in a profile
 * (docs/benchmarks.md, issue 15). docs/upstream-noise-length-decoder.md
 * describes it for upstream.
 *
 * For each connection Noise secures, this replaces its decoder's length
 * decoder with one that checks the length first and throws a single
 * preallocated RangeError (no stack to capture), the signal the decoder
 * still expects; otherwise it calls Noise's own. Nothing else changes.
 */
import { noise, type NoiseInit } from '@libp2p/noise'
import type { ConnectionEncrypter, SecuredConnection } from '@libp2p/interface'

export interface NoiseEncrypterInit extends NoiseInit {
  /**
   * Check a Noise message's length prefix is buffered before decoding it
   * instead of throwing a new RangeError; false: as published (to measure it).
   *
   * @default true
   */
  checkedLengths?: boolean
}

/** How libp2p takes a connection encrypter: a factory given the node's components. */
export type EncrypterFactory = (components: any) => ConnectionEncrypter

export function noiseEncrypter (init: NoiseEncrypterInit = {}): EncrypterFactory {
  const { checkedLengths, ...noiseInit } = init
  const create = noise(noiseInit)
  if (checkedLengths === false) return create
  return components => {
    const inner = create(components)
    return {
      protocol: inner.protocol,
      secureInbound: async (connection, options) => checkLengths(await inner.secureInbound(connection, options)),
      secureOutbound: async (connection, options) => checkLengths(await inner.secureOutbound(connection, options))
    }
  }
}

/** The bytes of Noise's length prefix (a big-endian uint16). */
const PREFIX_BYTES = 2

/**
 * What "not enough bytes yet" is thrown as: made once, since the decoder only
 * tests `instanceof RangeError` and drops it.
 */
const NEED_MORE = new RangeError('fewer bytes than a Noise length prefix are buffered')

/**
 * The fields of @libp2p/noise 17's EncryptedMessageStream this relies on (not
 * exported): `decoder`, a LengthPrefixedDecoder, and its `lengthDecoder`,
 * Noise's `uint16BEDecode` (which carries `bytes = 2`).
 */
interface LengthDecoding {
  decoder?: { lengthDecoder?: ((data: { byteLength: number }) => number) & { bytes?: number } }
}

function checkLengths<T extends SecuredConnection> (secured: T): T {
  const decoder = (secured.connection as LengthDecoding | undefined)?.decoder
  const lengthDecoder = decoder?.lengthDecoder
  // Another Noise version: leave it as it is rather than guess at its fields.
  if (typeof lengthDecoder !== 'function' || lengthDecoder.bytes !== PREFIX_BYTES) return secured
  const checked = (data: { byteLength: number }): number => {
    if (data.byteLength < PREFIX_BYTES) throw NEED_MORE
    return lengthDecoder(data)
  }
  checked.bytes = PREFIX_BYTES
  decoder!.lengthDecoder = checked
  return secured
}
