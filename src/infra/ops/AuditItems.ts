/**
 * What an audit reads of a namespace, each kind of partition whole (merged over a partitioned key space) or one key of
 * it, in key order, page by page: the live range, the history area (freed-seq markers left out: they hold no event)
 * and the graves, as stored events, not decrypted. Within a key, live and history events come newest first (sort
 * keys invert seq).
 */
import type { Result } from "effect"
import { Stream } from "effect"
import type { StorageFailure, TableError, Throttled } from "../../domain/Errors.ts"
import * as Key from "../../domain/Key.ts"
import * as SortKey from "../../domain/SortKey.ts"
import type { AttributeMap, Dynamo } from "../Dynamo.ts"
import { queryPages } from "../Dynamo.ts"
import { Attr, attributesOf, rangeQuery } from "../EventRecord.ts"
import type { Location, StoredEvent } from "../EventRecord.ts"
import type { EventTable } from "../EventTable.ts"
import { buriedTombstone } from "../GraveRecord.ts"
import { isFreedMarker } from "../HistoryRecord.ts"
import { areaPartition, rangePartitions } from "../PartitionKeys.ts"
import { mergeSorted } from "../SortedMerge.ts"

/** The event sort keys of one key, or of every key (the empty key's bytes sort first). */
const eventRange = (key: string | undefined) =>
  key === undefined
    ? { lower: new Uint8Array([0]), upper: SortKey.prefixUpperBound(""), descending: false }
    : { lower: SortKey.lowerBound(key), upper: SortKey.upperBound(key), descending: false }

/** Every event of the live range (of `key` only, when given), in key order, each key's newest first. */
export const live = (
  table: EventTable["Service"],
  key?: string
): Stream.Stream<StoredEvent, TableError> => table.scan(eventRange(key))

/** Every event copy of the history area (of `key` only, when given), in key order, each key's newest first. */
export const history = (
  table: EventTable["Service"],
  key?: string
): Stream.Stream<StoredEvent, TableError> =>
  table.scan({ ...eventRange(key), area: "history" }).pipe(
    Stream.filter((stored) => !isFreedMarker(stored.item))
  )

/** A grave as an audit reads it: the key it is filed under, and its tombstone or why it holds none. */
export interface GraveRead {
  readonly key: string
  readonly tombstone: Result.Result<StoredEvent, string>
}

/** The sort keys graves are filed under (`key ‖ 0x00`): every key's, or `key`'s only. */
export const graveRange = (key?: string): { readonly lower: Uint8Array; readonly upper: Uint8Array } =>
  key === undefined
    ? { lower: new Uint8Array([0]), upper: SortKey.prefixUpperBound("") }
    : { lower: SortKey.keyPrefix(key), upper: SortKey.keyPrefix(key) }

/**
 * Every grave filed in a sort-key range (see {@link graveRange}) at a location, one per key, in key order, from every
 * partition of the location's layout the range meets. Unlike the store's reads, which fail on a corrupt grave, a
 * grave that holds no tombstone of its key is given with the reason, for the audit to report.
 */
export const graves = (
  location: Location,
  range: { readonly lower: Uint8Array; readonly upper: Uint8Array }
): Stream.Stream<GraveRead, Throttled | StorageFailure, Dynamo> => {
  // Each live partition files its graves beside it (see `PartitionKeys`): every one the range meets, merged in key order.
  const partitions = rangePartitions(location, range).map((live) => areaPartition(live, "graves"))
  const filed = (item: AttributeMap) => item[Attr.sort]?.B ?? new Uint8Array([0])
  const inPartition = (partition: string) =>
    queryPages(rangeQuery(location.table, partition, range.lower, range.upper)).pipe(
      Stream.flatMap((page) => Stream.fromIterable(page.Items ?? []))
    )
  return mergeSorted(partitions.map(inPartition), (a, b) => Buffer.compare(filed(a), filed(b))).pipe(
    Stream.map((item): GraveRead => {
      // Filed under `key ‖ 0x00`.
      const sortKey = filed(item)
      return {
        key: Key.fromBytes(sortKey.subarray(0, Math.max(0, sortKey.length - 1))),
        tombstone: buriedTombstone(location, item)
      }
    })
  )
}

/**
 * The revision (event id) a stored event claims, read without decrypting: for an event that cannot be decrypted
 * (shredded) it is all there is, and two copies of one seq with different revisions are two different events.
 */
export const revisionOf = (stored: StoredEvent): string | undefined => attributesOf(stored.item)[Attr.revision]?.S
