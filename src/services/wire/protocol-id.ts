/** `/clawmatrix/handoff/1.0.0` from its parts, as js-libp2p builds its protocol ids. */
export function protocolId (prefix: string, name: string, version: string): string {
  return `/${prefix}/${name}/${version}`
}
