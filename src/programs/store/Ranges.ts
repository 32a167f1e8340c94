/**
 * Range reads over the event log: the newest event of every key in a range,
 * in either direction, lazily paged, with tombstones and expired items left
 * out before anything is decrypted.
 */
import { Result, Stream } from "effect"
import { isExpired } from "../../domain/Item.ts"
import { liveItem } from "../../domain/Event.ts"
import * as SortKey from "../../domain/SortKey.ts"
import type { EventTable, StoredEvent } from "../../infra/EventTable.ts"

/** A range of keys, both ends inclusive. */
export interface KeyRange {
  readonly start: string
  readonly end: string
  readonly descending?: boolean | undefined
}

/** The scan bounds of an inclusive key range. */
export const sortKeyRange = (range: KeyRange) => ({
  lower: SortKey.lowerBound(range.start),
  upper: SortKey.upperBound(range.end),
  descending: range.descending ?? false
})

/**
 * The newest stored item of every key, in scan order. Ascending scans meet a
 * key's newest event first; descending scans meet it last, so the previous
 * key's newest is emitted when the key changes.
 */
export const newestPerKey = <E, R>(
  items: Stream.Stream<StoredEvent, E, R>,
  descending: boolean
): Stream.Stream<StoredEvent, E, R> =>
  descending
    ? Stream.mapAccum(
      items,
      (): StoredEvent | undefined => undefined,
      (pending, stored): readonly [StoredEvent | undefined, ReadonlyArray<StoredEvent>] =>
        pending === undefined || pending.key === stored.key ? [stored, []] : [stored, [pending]],
      { onHalt: (pending) => (pending ? [pending] : []) }
    )
    : Stream.mapAccum(
      items,
      (): string | undefined => undefined,
      (previous, stored): readonly [string, ReadonlyArray<StoredEvent>] =>
        [stored.key, stored.key === previous ? [] : [stored]]
    )

/** Whether a stored item may be live at `now`, judged from its clear attributes without decrypting. */
export const mayBeLive = (stored: StoredEvent, now: number): boolean =>
  (stored.op === "put" || stored.op === "keep-alive") && !isExpired(stored.expires, now)

/** The live items of a range at `now`, decrypted, lazily. */
export const liveItems = (table: EventTable["Service"], range: KeyRange, now: number) =>
  newestPerKey(table.scan(sortKeyRange(range)), range.descending ?? false).pipe(
    Stream.filter((stored) => mayBeLive(stored, now)),
    Stream.mapEffect((stored) => table.decode(stored)),
    Stream.filterMap((event) => {
      const item = liveItem(event, now)
      return item ? Result.succeed(item) : Result.failVoid
    })
  )

/** The keys of the live items of a range at `now`, without decrypting anything. */
export const liveKeys = (table: EventTable["Service"], range: KeyRange, now: number) =>
  newestPerKey(table.scan(sortKeyRange(range)), false).pipe(
    Stream.filter((stored) => mayBeLive(stored, now)),
    Stream.map((stored) => stored.key)
  )
