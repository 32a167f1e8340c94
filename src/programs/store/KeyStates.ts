/**
 * The newest event of every key in a range, deleted keys included: what a
 * projection is rebuilt from. A deleted key whose tombstone was buried has no
 * events in the live range, so reading the live range alone would never tell
 * a rebuilt view that the key is gone.
 */
import { Stream } from "effect"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import * as Key from "../../domain/Key.ts"
import * as SortKey from "../../domain/SortKey.ts"
import type { EventTable, SortKeyRange, StoredEvent } from "../../infra/EventTable.ts"

/**
 * The sort-key ranges holding exactly the keys under `prefixes` (everything when empty), in key order and
 * disjoint: a prefix inside another one is dropped, so no key is read twice.
 */
export const coveredRanges = (prefixes: ReadonlyArray<string>): ReadonlyArray<SortKeyRange> => {
  if (prefixes.length === 0 || prefixes.includes("")) {
    return [{ lower: new Uint8Array([0]), upper: SortKey.prefixUpperBound(""), descending: false }]
  }
  const sorted = [...new Set(prefixes)].sort(Key.compare)
  const outermost = sorted.filter((prefix, i) => !sorted.slice(0, i).some((other) => prefix.startsWith(other)))
  // The keys under a prefix are the sort keys from its bytes up to its bytes followed by 0xFF (never in UTF-8).
  return outermost.map((prefix) => ({ lower: Key.toBytes(prefix), upper: SortKey.prefixUpperBound(prefix), descending: false }))
}

/** Merges a key-ordered array of live newest events with key-ordered buried tombstones; for a key in both, the higher seq. */
const mergeByKey = <E, R>(live: ReadonlyArray<StoredEvent>, buried: Stream.Stream<StoredEvent, E, R>): Stream.Stream<StoredEvent, E, R> =>
  Stream.mapAccum(buried, () => 0, (i, grave): readonly [number, ReadonlyArray<StoredEvent>] => {
    const out: Array<StoredEvent> = []
    while (i < live.length && Key.compare(live[i]!.key, grave.key) < 0) out.push(live[i++]!)
    if (i < live.length && live[i]!.key === grave.key) out.push(live[i]!.seq >= grave.seq ? live[i++]! : (i++, grave))
    else out.push(grave)
    return [i, out]
  }, { onHalt: (i) => live.slice(i) })

/**
 * The newest event of every key of a range, in key order, tombstones included: from the live range, or for a
 * deleted key whose tombstone was buried (moved out of the live range by compaction), from its grave.
 *
 * A burial moves a tombstone from the live range to its grave in one transaction, so a key is in one or the
 * other; reading the graves of each stretch of keys only after the live page covering it was read means a
 * key buried between the two reads is found in its grave rather than missed in both.
 */
export const newestEvents = (
  table: EventTable["Service"],
  range: SortKeyRange
): Stream.Stream<StoredEvent, Throttled | StorageFailure> =>
  Stream.suspend(() => {
    let previous: string | undefined
    let gravesFrom = range.lower
    const live = table.scan({ ...range, descending: false }).pipe(
      Stream.mapArray((page) => [page] as const),
      Stream.flatMap((page) => {
        // Ascending, a key's newest event comes first; its older ones may run on into the next page.
        const newest = page.filter((stored) => stored.key !== previous && (previous = stored.key, true))
        const upTo = SortKey.keyPrefix(page[page.length - 1]!.key)
        const from = gravesFrom
        gravesFrom = new Uint8Array([...upTo, 0])
        return mergeByKey(newest, table.graves(from, upTo))
      })
    )
    return Stream.concat(live, Stream.suspend(() => table.graves(gravesFrom, range.upper)))
  })

/** The newest event of every key under any of `prefixes` (every key when empty), in key order, deleted keys included. */
export const newestUnder = (
  table: EventTable["Service"],
  prefixes: ReadonlyArray<string>
): Stream.Stream<StoredEvent, Throttled | StorageFailure> =>
  Stream.fromIterable(coveredRanges(prefixes)).pipe(
    Stream.flatMap((range) => newestEvents(table, range)),
    Stream.filter((stored) => prefixes.length === 0 || prefixes.some((prefix) => stored.key.startsWith(prefix)))
  )
