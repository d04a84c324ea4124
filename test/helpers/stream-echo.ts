import type { Stream, StreamMessageEvent } from '@libp2p/interface'

/**
 * Sends `message` on a stream whose remote echoes it, and resolves with what
 * came back once as many bytes did; rejects if the stream closes first.
 */
export async function echoOver (stream: Stream, message: Uint8Array): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let received = 0
  const back = new Promise<void>((resolve, reject) => {
    const onMessage = (event: StreamMessageEvent): void => {
      chunks.push(event.data.subarray())
      received += event.data.byteLength
      if (received >= message.byteLength) {
        stream.removeEventListener('message', onMessage)
        resolve()
      }
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', () => { reject(new Error('the echo stream closed')) }, { once: true })
  })
  stream.send(message)
  await back
  return Buffer.concat(chunks)
}
