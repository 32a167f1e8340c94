/**
 * A small seeded PRNG (mulberry32) for the fault campaign: every schedule (operations, faults, kills, pauses)
 * comes from one seed, so a failing run can be replayed by its seed (as far as real time lets a run replay).
 */

/** A source of numbers in [0, 1), with helpers. */
export interface Prng {
  readonly next: () => number
  /** An integer in [min, max]. */
  readonly int: (min: number, max: number) => number
  /** True with probability `p`. */
  readonly chance: (p: number) => boolean
  /** One element of a non-empty array. */
  readonly pick: <A>(items: ReadonlyArray<A>) => A
  /** A new generator seeded from this one, so independent schedules do not shift each other. */
  readonly fork: () => Prng
}

/** A generator seeded by `seed` (any 32-bit integer). */
export const make = (seed: number): Prng => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1))
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => items[int(0, items.length - 1)]!,
    fork: () => make(Math.floor(next() * 4294967296))
  }
}
