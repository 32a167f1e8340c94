/**
 * Every partition key a namespace's items take in the event table, from the codecs that write them: the live
 * events under the namespace itself, and the graves, the history area, the chunks of large values and the data keys
 * each under the namespace
 * followed by NUL and a suffix. What an IAM policy confining a principal to one namespace must allow, and nothing
 * more: a partition outside this list belongs to another namespace (or to no store).
 */
import { partitionOf as dataKeyPartition } from "./crypto/DataKeyStore.ts"
import type { Location } from "./EventRecord.ts"
import { gravePartition } from "./GraveRecord.ts"
import { historyPartition } from "./HistoryRecord.ts"
import { chunkPartition } from "./ValueChunks.ts"

/** The kinds of item a namespace keeps in the event table, each in a partition of its own. */
export type PartitionKind = "events" | "graves" | "history" | "chunks" | "data-keys"

/** One partition of a namespace: what it holds and its partition key. */
export interface NamespacePartition {
  readonly kind: PartitionKind
  readonly key: string
}

/** The namespace's partitions in the event table, the live events first. */
export const partitionsOf = (location: Location): ReadonlyArray<NamespacePartition> => [
  { kind: "events", key: location.namespace },
  { kind: "graves", key: gravePartition(location) },
  { kind: "history", key: historyPartition(location) },
  { kind: "chunks", key: chunkPartition(location) },
  { kind: "data-keys", key: dataKeyPartition(location.namespace) }
]

/** Whether a partition key is one of the namespace's. */
export const belongsTo = (location: Location, partition: string): boolean =>
  partitionsOf(location).some((entry) => entry.key === partition)
