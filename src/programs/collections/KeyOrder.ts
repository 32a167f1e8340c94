/**
 * Per-key order for consumers of the stream: the last seq delivered of each
 * key, so that a repeated record is dropped and a jump over missing seqs is
 * noticed (the missing events are then read from the table). A key's events
 * may reach a reader out of order or twice: a retried read repeats records,
 * and a partition split by sort key puts one key's events in sibling shards.
 */

/** What to do with an event of a key. */
export type Verdict =
  | { readonly _tag: "Duplicate" }
  | { readonly _tag: "Next" }
  | { readonly _tag: "Gap"; readonly after: number }

/** The last delivered seq of recently seen keys. */
export interface KeyOrder {
  /** How event `seq` of `key` relates to what was delivered. A key not seen yet (or forgotten) takes any seq. */
  readonly check: (key: string, seq: number) => Verdict
  /** Records that event `seq` of `key` was delivered. */
  readonly delivered: (key: string, seq: number) => void
  /** The last delivered seq of `key`, or undefined when it was not seen yet (or was forgotten). */
  readonly last: (key: string) => number | undefined
}

/** Tracks up to `capacity` keys, forgetting the least recently delivered first (memory stays bounded). */
export const make = (capacity = 100_000): KeyOrder => {
  const last = new Map<string, number>()
  return {
    check: (key, seq) => {
      const known = last.get(key)
      if (known === undefined || seq === known + 1) return { _tag: "Next" }
      return seq <= known ? { _tag: "Duplicate" } : { _tag: "Gap", after: known }
    },
    delivered: (key, seq) => {
      const known = last.get(key)
      if (known !== undefined && known >= seq) return
      last.delete(key) // re-inserting keeps the map in recency order
      last.set(key, seq)
      if (last.size > capacity) last.delete(last.keys().next().value!)
    },
    last: (key) => last.get(key)
  }
}
