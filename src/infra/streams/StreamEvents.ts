/**
 * Stream records as events: which records hold one of a namespace's events
 * (read from the clear sort key, without decrypting), and the event itself.
 */
import { Effect, Result } from "effect"
import * as SortKey from "../../domain/SortKey.ts"
import { Attr, attributesOf, isMovedCopy, itemSize, peek } from "../EventRecord.ts"
import type { StoredEvent } from "../EventRecord.ts"
import type { EventTable } from "../EventTable.ts"
import { isLivePartition } from "../PartitionKeys.ts"
import type { StreamRecord } from "./StreamsApi.ts"

/**
 * Whether a partition key is one of the namespace's live partitions, under any layout (see `PartitionKeys`): read
 * from the record's own key, so a consumer sees every partition's events whatever layout it was given.
 */
const isLive = (table: EventTable["Service"], partition: string | undefined): boolean =>
  partition !== undefined && isLivePartition(table.location.namespace, partition)

/**
 * The event an item of the stream holds, if it is one of this namespace's events. A value stored in chunks is read
 * only when `readChunks` says so for the event's (stored) key; otherwise the event comes without it (see
 * `EventTable.decode`).
 */
export const eventOfRecord = (
  table: EventTable["Service"],
  record: StreamRecord,
  readChunks: (key: string) => boolean = () => true
) =>
  Effect.gen(function*() {
    const located = locate(table, record)
    return located === undefined ? undefined : yield* table.decode(located, { readChunks: readChunks(located.key) })
  })

/** The key and seq of a stream record holding one of this namespace's events, read without decrypting. */
export const locate = (table: EventTable["Service"], record: StreamRecord) => {
  const image = record.newImage
  if (record.eventName === "REMOVE" || image === undefined) return undefined
  const sortKey = isLive(table, image[Attr.partition]?.S) ? image[Attr.sort]?.B : undefined
  // A relocated copy (see `Relocation`) repeats an event its consumers already had under its old stored key.
  if (sortKey === undefined || isMovedCopy(image)) return undefined
  try {
    return { ...SortKey.decode(sortKey), item: image }
  } catch {
    return undefined // not an event item (malformed sort key): nothing to watch
  }
}

/** The key and seq of one of this namespace's event items a REMOVE record says was deleted. */
export const removedEvent = (
  table: EventTable["Service"],
  record: StreamRecord
): { readonly key: string; readonly seq: number } | undefined => {
  if (record.eventName !== "REMOVE") return undefined
  const sortKey = isLive(table, record.keys[Attr.partition]?.S) ? record.keys[Attr.sort]?.B : undefined
  if (sortKey === undefined) return undefined
  try {
    return SortKey.decode(sortKey)
  } catch {
    return undefined // not an event item
  }
}

/**
 * The stored event a stream record carries (its new image is the item as written: events are never updated), so a
 * consumer can move it (compaction) without reading it from the table again.
 */
export const storedOfRecord = (table: EventTable["Service"], record: StreamRecord): StoredEvent | undefined => {
  const located = locate(table, record)
  if (located === undefined) return undefined
  const peeked = peek(located.item)
  return Result.isSuccess(peeked) ? peeked.success : undefined
}

/** The size DynamoDB counts for a stored event's item, for consumers that keep items in memory within a budget. */
export const storedSize = (stored: StoredEvent): number => itemSize(attributesOf(stored.item))

/**
 * Orders two sequence numbers of one shard (decimal strings that grow within a shard, of varying length on AWS);
 * negative when `a` comes first.
 */
export const compareSequence = (a: string, b: string): number => {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    const x = BigInt(a)
    const y = BigInt(b)
    return x < y ? -1 : x > y ? 1 : 0
  }
  return a < b ? -1 : a > b ? 1 : 0
}
