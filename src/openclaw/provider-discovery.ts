/**
 * The manifest's `providerCatalogEntry`: the `clawmatrix` provider as
 * OpenClaw loads it without activating the plugin (model listing, the
 * synthetic key lookup before an agent turn). It reads the cluster's models
 * from the node's own `GET /v1/models`, so it imports no libp2p.
 */
import { clawmatrixProvider } from './provider.js'

export default clawmatrixProvider()
