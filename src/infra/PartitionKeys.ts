/**
 * The partition keys of a namespace's partitioned key space (see `Partitioning`): the default partition is the
 * namespace itself, as ever, and a prefix's partition `suffix` is `<namespace> ‖ NUL ‖ @ ‖ suffix`. Each live
 * partition has its own areas beside it (`<live> ‖ NUL ‖ history`, `graves`, `chunks`), so a bucketed prefix spreads
 * its whole write path (event, history copy, grave, chunks), and an item's areas follow from its own `pk`: a
 * consumer holding an item (a stream record, a scanned event) needs no configuration to find where it moves.
 *
 * The routing functions here (stored key → partition key, range → partition keys) are what a migration consults.
 */
import * as Partitioning from "../domain/Partitioning.ts"
import type { Layout } from "../domain/Partitioning.ts"

/** What a partition key needs of a location: its namespace and layout. */
export interface Partitioned {
  readonly namespace: string
  /** The namespace's partitioned prefixes (none: one partition, the namespace). */
  readonly partitions?: Layout | undefined
}

/** The areas kept beside each live partition. */
export type Area = "history" | "graves" | "chunks"

/** What separates a partition suffix from the namespace: NUL never occurs in a namespace, `@` in no area name. */
const partitionMark = "\u0000@"

/** The partition key of partition `suffix` of a namespace (`""`: the namespace itself). */
export const partitionKey = (namespace: string, suffix: string): string =>
  suffix === Partitioning.defaultPartition ? namespace : `${namespace}${partitionMark}${suffix}`

/** The live partition key a stored key's events take. */
export const keyPartition = (location: Partitioned, storedKey: string): string =>
  partitionKey(location.namespace, Partitioning.partitionOf(location.partitions ?? [], storedKey))

/** The partition key of an area beside a live partition. */
export const areaPartition = (livePartition: string, area: Area): string => `${livePartition}\u0000${area}`

/** The area partition a stored key's items of that area take. */
export const keyArea = (location: Partitioned, storedKey: string, area: Area): string =>
  areaPartition(keyPartition(location, storedKey), area)

/** The live partition an area partition lies beside, if it is one of `area`. */
export const liveOfArea = (partition: string, area: Area): string | undefined => {
  const suffix = `\u0000${area}`
  return partition.endsWith(suffix) ? partition.slice(0, -suffix.length) : undefined
}

/** Every live partition key of a location, the namespace first. */
export const livePartitions = (location: Partitioned): ReadonlyArray<string> =>
  Partitioning.allPartitions(location.partitions ?? []).map((suffix) => partitionKey(location.namespace, suffix))

/** The live partition keys a sort-key range may hold events in. */
export const rangePartitions = (
  location: Partitioned,
  range: { readonly lower: Uint8Array; readonly upper: Uint8Array }
): ReadonlyArray<string> =>
  Partitioning.partitionsOfRange(location.partitions ?? [], range).map((suffix) =>
    partitionKey(location.namespace, suffix)
  )

/**
 * Whether a partition key is one of a namespace's live partitions, under any layout: read from the key alone, so
 * a stream consumer recognises every partition's events without knowing the layout.
 */
export const isLivePartition = (namespace: string, partition: string): boolean => {
  if (partition === namespace) return true
  const head = `${namespace}${partitionMark}`
  return partition.startsWith(head) && partition.length > head.length && !partition.includes("\u0000", head.length)
}

/** The partition of a namespace's metadata (its layout record, see `LayoutRecord`). */
export const metaPartition = (namespace: string): string => `${namespace}\u0000meta`

const partitionBytes = new WeakMap<Partitioned, number>()

/**
 * The UTF-8 bytes of a location's longest live partition key, for an item's size bound (which cannot route: a sealed
 * key's stored form is not known there); every write asks, so it is worked out once per location.
 */
export const longestPartitionBytes = (location: Partitioned): number => {
  const known = partitionBytes.get(location)
  if (known !== undefined) return known
  const bytes = Math.max(...livePartitions(location).map((partition) => Buffer.byteLength(partition, "utf8")))
  partitionBytes.set(location, bytes)
  return bytes
}
