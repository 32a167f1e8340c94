/**
 * A binary min-heap: the timers of the expiry and history projections keep
 * what is due next on top. Entries that are no longer wanted are left in and
 * skipped by the caller when popped, so `reset` exists to drop them in bulk.
 */

/** A min-heap of `A` ordered by `priority` (lowest first). */
export interface MinHeap<A> {
  readonly size: number
  readonly push: (item: A) => void
  readonly peek: () => A | undefined
  readonly pop: () => A | undefined
  /** Replaces the contents. */
  readonly reset: (items: Iterable<A>) => void
}

/** An empty heap. */
export const make = <A>(priority: (item: A) => number): MinHeap<A> => {
  const items: Array<A> = []
  const less = (i: number, j: number) => priority(items[i]!) < priority(items[j]!)
  const swap = (i: number, j: number) => {
    const held = items[i]!
    items[i] = items[j]!
    items[j] = held
  }
  const up = (i: number) => {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!less(i, parent)) return
      swap(i, parent)
      i = parent
    }
  }
  const down = (i: number) => {
    while (true) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < items.length && less(l, m)) m = l
      if (r < items.length && less(r, m)) m = r
      if (m === i) return
      swap(i, m)
      i = m
    }
  }
  return {
    get size() {
      return items.length
    },
    push: (item) => {
      items.push(item)
      up(items.length - 1)
    },
    peek: () => items[0],
    pop: () => {
      const top = items[0]
      const last = items.pop()
      if (items.length > 0 && last !== undefined) {
        items[0] = last
        down(0)
      }
      return top
    },
    reset: (entries) => {
      items.length = 0
      for (const item of entries) items.push(item)
      for (let i = (items.length >> 1) - 1; i >= 0; i--) down(i)
    }
  }
}
