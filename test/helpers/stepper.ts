/** Holds the fake upstream before every chunk after the first until the test releases it. */
export function stepper (): { beforeChunk: (i: number) => Promise<void>, release: (i: number) => void } {
  const gates = new Map<number, PromiseWithResolvers<void>>()
  const gate = (i: number): PromiseWithResolvers<void> => {
    let g = gates.get(i)
    if (g == null) gates.set(i, g = Promise.withResolvers())
    return g
  }
  return {
    beforeChunk: async i => { if (i > 0) await gate(i).promise },
    release: i => { gate(i).resolve() }
  }
}
