/**
 * Every partition key a namespace's items take in the event table, from the codecs that write them: for each live
 * partition (the namespace itself, and one per partition of a partitioned key space, see `PartitionKeys`) its
 * events and, beside it, its graves, history area and chunks of large values; then the data keys and the metadata
 * (the layout record), each under the namespace followed by NUL and a suffix. What an IAM policy confining a
 * principal to one namespace must allow, and nothing more: a partition outside this list belongs to another
 * namespace (or to no store).
 */
import { partitionOf as dataKeyPartition } from "./crypto/DataKeyStore.ts"
import type { Location } from "./EventRecord.ts"
import { areaPartition, livePartitions, metaPartition } from "./PartitionKeys.ts"

/** The kinds of item a namespace keeps in the event table, each in partitions of their own. */
export type PartitionKind = "events" | "graves" | "history" | "chunks" | "data-keys" | "meta"

/** One partition of a namespace: what it holds and its partition key. */
export interface NamespacePartition {
  readonly kind: PartitionKind
  readonly key: string
}

/** The namespace's partitions in the event table, the default partition's live events first. */
export const partitionsOf = (location: Location): ReadonlyArray<NamespacePartition> => [
  ...livePartitions(location).flatMap((live): ReadonlyArray<NamespacePartition> => [
    { kind: "events", key: live },
    { kind: "graves", key: areaPartition(live, "graves") },
    { kind: "history", key: areaPartition(live, "history") },
    { kind: "chunks", key: areaPartition(live, "chunks") }
  ]),
  { kind: "data-keys", key: dataKeyPartition(location.namespace) },
  { kind: "meta", key: metaPartition(location.namespace) }
]

/** Whether a partition key is one of the namespace's. */
export const belongsTo = (location: Location, partition: string): boolean =>
  partitionsOf(location).some((entry) => entry.key === partition)
