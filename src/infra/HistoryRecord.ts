/**
 * The items of the history area (`<namespace>\0history`): copies of superseded events under their live sort keys,
 * and the markers compaction leaves for a key's freed seq 1 when it keeps no copy. Either one at a key's seq 1 tells
 * a strict first append (predecessor `None`, see `EventTable.Predecessor`) that the key already had events.
 */
import * as SortKey from "../domain/SortKey.ts"
import type { AttributeMap } from "./Dynamo.ts"
import { Attr, attributesOf } from "./EventRecord.ts"
import type { Location, StoredItem } from "./EventRecord.ts"
import { areaPartition, keyArea } from "./PartitionKeys.ts"

/**
 * The partition holding the history of a namespace's default partition; each partition of a partitioned key space
 * has its own beside it (see `PartitionKeys`). NUL never occurs in a namespace.
 */
export const historyPartition = (location: Location): string => areaPartition(location.namespace, "history")

/** The attribute that makes a history item a freed-seq marker rather than an event. */
const freedAttr = "freed"

/**
 * How long a freed-seq marker stays: far beyond any request DynamoDB still accepts (a signed request expires
 * within minutes), so a first append decided before the key existed is refused however late it arrives.
 */
export const freedMarkerMillis = 3 * 24 * 60 * 60 * 1000

/** The primary key of a key's seq 1 in the history area: its copy, or the marker left when no copy is kept. */
export const firstSeqKey = (location: Location, key: string): AttributeMap => ({
  [Attr.partition]: { S: keyArea(location, key, "history") },
  [Attr.sort]: { B: SortKey.encode(key, 1) }
})

/** A marker for a key's seq 1, freed with no copy kept: no value, no event, gone by DynamoDB's TTL at `expiresAt`. */
export const freedMarker = (location: Location, key: string, expiresAt: number): AttributeMap => ({
  ...firstSeqKey(location, key),
  [freedAttr]: { BOOL: true },
  [Attr.ttl]: { N: String(expiresAt) }
})

/** Whether a history item is a freed-seq marker: history readers skip it, it holds no event. */
export const isFreedMarker = (item: StoredItem): boolean => attributesOf(item)[freedAttr]?.BOOL === true
