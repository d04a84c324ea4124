/**
 * Stage marks of a request on its way to the first byte (the model proxy's
 * and the frame batcher's), published on a diagnostics channel. Nothing subscribes in a running node: a mark then
 * costs one property read. `npm run bench -- model-proxy-trace` preloads a
 * subscriber (bench/lib/latency-trace.mjs) into every process of a one-hop
 * path and lines the marks up into a latency breakdown.
 */
import { channel } from 'node:diagnostics_channel'

export const STAGE_CHANNEL = 'clawmatrix:stage'

const stages = channel(STAGE_CHANNEL)

/** Marks that a request reached `stage` (see docs/benchmarks.md for the list). */
export function mark (stage: string): void {
  if (stages.hasSubscribers) stages.publish(stage)
}
