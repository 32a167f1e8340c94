/**
 * The history area: superseded events moved out of the live range, in a
 * partition of their own (`<namespace>\0history`), with the same sort keys
 * and attributes (so they still decrypt), and a DynamoDB TTL when retention
 * is limited. Tombstones leave the live range too, for a grave (see
 * `GraveRecord`), once every older event of their key is gone.
 */
import { DeleteItemCommand } from "@aws-sdk/client-dynamodb"
import { Context, Effect, Layer, Stream } from "effect"
import type { StorageFailure, TableError, Throttled } from "../domain/Errors.ts"
import * as SortKey from "../domain/SortKey.ts"
import { conditionalPut, Dynamo } from "./Dynamo.ts"
import { Attr, attributesOf, partitionOf } from "./EventRecord.ts"
import type { StoredEvent } from "./EventRecord.ts"
import { EventTable } from "./EventTable.ts"
import * as GraveRecord from "./GraveRecord.ts"
import * as HistoryRecord from "./HistoryRecord.ts"
import { areaPartition, keyPartition } from "./PartitionKeys.ts"

export { historyPartition } from "./HistoryRecord.ts"

/** What removing an event from the live range found (see `HistoryArea.removeLive`). */
export type Removal = "removed" | "gone" | "replaced"

/** Moves and reads superseded events. */
export class HistoryArea extends Context.Service<HistoryArea, {
  /** The live events of a key up to and including `seq`, oldest first. */
  readonly upTo: (key: string, seq: number) => Stream.Stream<StoredEvent, TableError>
  /**
   * Copies an event into the history area; `expiresAt` (epoch seconds) lets DynamoDB's TTL remove it. A copy of
   * another event already at its seq stays: see {@link HistoryArea} `archive`'s condition.
   */
  readonly archive: (
    stored: StoredEvent,
    expiresAt: number | undefined
  ) => Effect.Effect<void, Throttled | StorageFailure>
  /**
   * Leaves a marker for a key's seq 1 that compaction frees keeping no copy, until `expiresAt` (epoch seconds): a
   * strict first append still in flight checks it (see `HistoryRecord`). A copy already there stays.
   */
  readonly markFreed: (key: string, expiresAt: number) => Effect.Effect<void, Throttled | StorageFailure>
  /**
   * Removes an event from the live range (only ever a superseded one): `removed`, `gone` when another compactor
   * moved it first, `replaced` when its sort key holds another event (one that landed late, see `archive`).
   */
  readonly removeLive: (stored: StoredEvent) => Effect.Effect<Removal, Throttled | StorageFailure>
  /**
   * Moves a live tombstone into the key's grave, and into the history area
   * unless `history` is undefined: the copy first, then the grave, then the
   * tombstone leaves the live range; the caller moves the key's older events
   * first. False when the tombstone was no longer live (another compactor got
   * there first).
   */
  readonly bury: (
    tombstone: StoredEvent,
    history: { readonly expiresAt: number | undefined } | undefined
  ) => Effect.Effect<boolean, Throttled | StorageFailure>
  /** A key's archived events, oldest first (freed-seq markers left out: they hold no event). */
  readonly archived: (key: string) => Stream.Stream<StoredEvent, TableError>
}>()("dynastate/HistoryArea") {
  /** The history area of the event table's namespace. */
  static readonly layer: Layer.Layer<HistoryArea, never, EventTable | Dynamo> = Layer.effect(
    HistoryArea,
    Effect.gen(function*() {
      const table = yield* EventTable
      const dynamo = yield* Dynamo
      const location = table.location
      /** The live partition an event was read from: its areas lie beside it (see `PartitionKeys`). */
      const livePartitionOf = (stored: StoredEvent) => partitionOf(stored.item) ?? keyPartition(location, stored.key)
      const archivedItem = (stored: StoredEvent, expiresAt: number | undefined) => ({
        ...attributesOf(stored.item),
        [Attr.partition]: { S: areaPartition(livePartitionOf(stored), "history") },
        ...(expiresAt === undefined ? {} : { [Attr.ttl]: { N: String(expiresAt) } })
      })
      /** A condition that the item is still the very event that was read (same event id). */
      const sameEvent = (stored: StoredEvent) => ({
        ConditionExpression: "#rev = :rev",
        ExpressionAttributeNames: { "#rev": Attr.revision },
        ExpressionAttributeValues: { ":rev": attributesOf(stored.item)[Attr.revision] ?? { S: "" } }
      })
      /** A condition that the item is missing or is the very event that was read. */
      const noOtherEvent = (stored: StoredEvent) => {
        const same = sameEvent(stored)
        return {
          ConditionExpression: `attribute_not_exists(#sk) OR ${same.ConditionExpression}`,
          ExpressionAttributeNames: { ...same.ExpressionAttributeNames, "#sk": Attr.sort },
          ExpressionAttributeValues: same.ExpressionAttributeValues
        }
      }
      const liveKey = (stored: StoredEvent) => ({
        [Attr.partition]: { S: livePartitionOf(stored) },
        [Attr.sort]: attributesOf(stored.item)[Attr.sort]!
      })

      /*
       * Never over a copy of another event at the same seq. Two events hold one seq only when a frozen writer's append
       * landed in a seq compaction had freed (see `WriteFence`); the one archived first is the one the key's history
       * was built from, and the late one was never acknowledged (its writer was told `LateWriteUndone`, or died).
       * Its live copy is then removed without a copy, as its writer would have.
       */
      const archive = (stored: StoredEvent, expiresAt: number | undefined) =>
        conditionalPut(dynamo, {
          TableName: location.table,
          Item: archivedItem(stored, expiresAt),
          ...noOtherEvent(stored)
        }).pipe(
          Effect.asVoid,
          Effect.catchTag("ConditionalCheckFailed", () =>
            Effect.logWarning(
              `history already holds another event at seq ${stored.seq} of ${stored.key}: the live one landed late ` +
                "in a freed seq and leaves without a copy"
            ).pipe(Effect.annotateLogs({ key: stored.key, seq: stored.seq })))
        )

      // Only the event that was read: should its sort key ever hold another one, that one is not compaction's to move.
      const removeLive = (stored: StoredEvent): Effect.Effect<Removal, Throttled | StorageFailure> =>
        dynamo.callConditional("DeleteItem", (client, abortSignal) =>
          client.send(
            new DeleteItemCommand({
              TableName: location.table,
              Key: liveKey(stored),
              ...sameEvent(stored),
              ReturnValuesOnConditionCheckFailure: "ALL_OLD"
            }),
            { abortSignal }
          )).pipe(
            Effect.as("removed" as const),
            Effect.catchTag(
              "ConditionalCheckFailed",
              (failure) => Effect.succeed(failure.item === undefined ? "gone" as const : "replaced" as const)
            )
          )

      // Never replace a grave by an older one (a late replay of an earlier deletion), nor the same one: a strict
      // append after it may have marked it followed, which a copy written again would erase.
      const fileGrave = (tombstone: StoredEvent) =>
        conditionalPut(dynamo, {
          TableName: location.table,
          Item: GraveRecord.fromTombstone(location, tombstone.key, tombstone.item),
          ConditionExpression: "attribute_not_exists(#sk) OR #seq < :seq",
          ExpressionAttributeNames: { "#sk": Attr.sort, "#seq": Attr.seq },
          ExpressionAttributeValues: { ":seq": { N: String(tombstone.seq) } }
        }).pipe(
          Effect.asVoid,
          Effect.catchTag("ConditionalCheckFailed", () => Effect.void)
        )

      /*
       * Three single-item writes in this order, not one transaction (which DynamoDB bills twice: 6 write units
       * instead of 3). Every state in between is one the store already reads right:
       * - history copy written, tombstone still live: the copy is a duplicate of a live event (as after `archive`
       *   before `removeLive`), and readers dedupe by seq;
       * - grave filed, tombstone still live: the live range's newest event is the tombstone, so the key is absent
       *   and the next write numbers from it; the grave is read only when the live range is empty, and a strict
       *   writer that read the tombstone live checks it there. A crash here leaves both, which the next burial (or
       *   the next write, superseding the tombstone) finishes;
       * - tombstone removed: exactly the transaction's outcome.
       * A grave that is already there with this seq or a newer one was filed by another compactor (a newer one
       * needs this tombstone gone first), so the removal goes on: it only removes this very event.
       */
      const bury = (tombstone: StoredEvent, history: { readonly expiresAt: number | undefined } | undefined) =>
        Effect.gen(function*() {
          if (history !== undefined) yield* archive(tombstone, history.expiresAt)
          yield* fileGrave(tombstone)
          return (yield* removeLive(tombstone)) === "removed"
        })

      return HistoryArea.of({
        // Sort keys invert seq: a descending scan from `seq` down is oldest-first up to `seq`.
        upTo: (key, seq) =>
          seq < 1
            ? Stream.empty
            : table.scan({ lower: SortKey.encode(key, seq), upper: SortKey.upperBound(key), descending: true }),
        archive,
        bury,
        markFreed: (key, expiresAt) =>
          conditionalPut(dynamo, {
            TableName: location.table,
            Item: HistoryRecord.freedMarker(location, key, expiresAt),
            ConditionExpression: "attribute_not_exists(#sk)",
            ExpressionAttributeNames: { "#sk": Attr.sort }
          }).pipe(
            Effect.asVoid,
            Effect.catchTag("ConditionalCheckFailed", () => Effect.void)
          ),
        removeLive,
        archived: (key) =>
          table.scan({
            lower: SortKey.lowerBound(key),
            upper: SortKey.upperBound(key),
            descending: true,
            area: "history"
          })
            .pipe(
              Stream.filter((stored) => !HistoryRecord.isFreedMarker(stored.item))
            )
      })
    })
  )
}
