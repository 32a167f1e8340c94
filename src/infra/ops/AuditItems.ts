/**
 * What an audit reads of a namespace, each partition whole and in key order, page by page: the live range, the
 * history area (freed-seq markers left out: they hold no event) and the graves, as stored events, not decrypted.
 * Within a key, live and history events come newest first (sort keys invert seq).
 */
import type { Result } from "effect"
import { Stream } from "effect"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import * as Key from "../../domain/Key.ts"
import * as SortKey from "../../domain/SortKey.ts"
import type { Dynamo } from "../Dynamo.ts"
import { queryPages } from "../Dynamo.ts"
import { Attr, attributesOf } from "../EventRecord.ts"
import type { StoredEvent } from "../EventRecord.ts"
import type { EventTable } from "../EventTable.ts"
import { buriedTombstone, gravePartition } from "../GraveRecord.ts"
import { historyPartition, isFreedMarker } from "../HistoryRecord.ts"

// Every event sort key is a key's bytes, 0x00, then the seq; the empty key's bytes sort first.
const lowest = new Uint8Array([0])
const highest = SortKey.prefixUpperBound("")

/** Every event of the live range, in key order, each key's newest first. */
export const live = (table: EventTable["Service"]): Stream.Stream<StoredEvent, Throttled | StorageFailure> =>
  table.scan({ lower: lowest, upper: highest, descending: false })

/** Every event copy of the history area, in key order, each key's newest first. */
export const history = (table: EventTable["Service"]): Stream.Stream<StoredEvent, Throttled | StorageFailure> =>
  table.scan({ lower: lowest, upper: highest, descending: false, partition: historyPartition(table.location) }).pipe(
    Stream.filter((stored) => !isFreedMarker(stored.item))
  )

/** A grave as an audit reads it: the key it is filed under, and its tombstone or why it holds none. */
export interface GraveRead {
  readonly key: string
  readonly tombstone: Result.Result<StoredEvent, string>
}

/**
 * Every grave, one per key, in key order. Unlike the store's reads, which fail on a corrupt grave, a grave that
 * holds no tombstone of its key is given with the reason, for the audit to report and go on.
 */
export const graves = (table: EventTable["Service"]): Stream.Stream<GraveRead, Throttled | StorageFailure, Dynamo> =>
  queryPages({
    TableName: table.location.table,
    KeyConditionExpression: "#pk = :pk",
    ExpressionAttributeNames: { "#pk": Attr.partition },
    ExpressionAttributeValues: { ":pk": { S: gravePartition(table.location) } },
    ConsistentRead: true
  }).pipe(
    Stream.flatMap((page) => Stream.fromIterable(page.Items ?? [])),
    Stream.map((item): GraveRead => {
      // Filed under `key ‖ 0x00`.
      const filed = item[Attr.sort]?.B ?? new Uint8Array([0])
      return {
        key: Key.fromBytes(filed.subarray(0, Math.max(0, filed.length - 1))),
        tombstone: buriedTombstone(table.location, item)
      }
    })
  )

/**
 * The revision (event id) a stored event claims, read without decrypting: for an event that cannot be decrypted
 * (shredded) it is all there is, and two copies of one seq with different revisions are two different events.
 */
export const revisionOf = (stored: StoredEvent): string | undefined => attributesOf(stored.item)[Attr.revision]?.S
