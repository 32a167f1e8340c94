/**
 * Range reads over a partitioned key space (see `PartitionKeys`): one query per partition the range touches, merged
 * lazily in sort-key order, so callers read one ordered stream as from a single partition.
 */
import type { Stream } from "effect"
import { attributesOf } from "./EventRecord.ts"
import type { Location, StoredEvent } from "./EventRecord.ts"
import { areaPartition, rangePartitions } from "./PartitionKeys.ts"
import type { Area } from "./PartitionKeys.ts"
import { mergeSorted } from "./SortedMerge.ts"

/** Bounds of a range read over sort keys, inclusive. */
export interface Bounds {
  readonly lower: Uint8Array
  readonly upper: Uint8Array
}

const sortKeyOf = (stored: StoredEvent): Uint8Array => attributesOf(stored.item)["sk"]?.B ?? new Uint8Array()

/** Sort-key order of stored events, ascending. */
export const ascending = (a: StoredEvent, b: StoredEvent): number => Buffer.compare(sortKeyOf(a), sortKeyOf(b))

/**
 * The events of a sort-key range in every partition it touches (live, or the `area` beside each), merged in
 * sort-key order (`descending` reverses it). `query` reads one partition, already in that order.
 */
export const merged = <E>(
  location: Location,
  bounds: Bounds,
  options: { readonly descending: boolean; readonly area?: Area | undefined },
  query: (partition: string) => Stream.Stream<StoredEvent, E>
): Stream.Stream<StoredEvent, E> => {
  const partitions = rangePartitions(location, bounds).map((partition) =>
    options.area === undefined ? partition : areaPartition(partition, options.area)
  )
  return mergeSorted(
    partitions.map(query),
    options.descending ? (a, b) => ascending(b, a) : ascending
  )
}
