/**
 * What callers store and read: items and the leases that name a stored revision.
 */

/** A value with its key and, once stored, its revision. `expires` is epoch milliseconds. */
export interface Item {
  readonly key: string
  readonly value: Uint8Array
  readonly expires?: number | undefined
  readonly revision: string
}

/** An item as given to a write: the store assigns the revision. */
export interface ItemInput {
  readonly key: string
  readonly value: Uint8Array
  readonly expires?: number | undefined
}

/** Names one stored revision of a key, as returned by every write. */
export interface Lease {
  readonly key: string
  readonly revision: string
}

/** Whether an item with this expiry is expired at `now` (epoch milliseconds); no expiry never expires. */
export const isExpired = (expires: number | undefined, now: number): boolean => expires !== undefined && expires <= now

/** Byte-wise equality of two values, as `compareAndSwap` needs. */
export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
