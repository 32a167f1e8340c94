/**
 * The history area: superseded events moved out of the live range, in a
 * partition of their own (`<namespace>\0history`), with the same sort keys
 * and attributes (so they still decrypt), and a DynamoDB TTL when retention
 * is limited.
 */
import { DeleteItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb"
import { Context, Effect, Layer, Stream } from "effect"
import * as SortKey from "../domain/SortKey.ts"
import { Dynamo } from "./Dynamo.ts"
import { Attr } from "./EventRecord.ts"
import type { Location } from "./EventRecord.ts"
import { EventTable } from "./EventTable.ts"
import type { StoredItem } from "./EventTable.ts"
import type { StorageFailure, Throttled } from "../domain/Errors.ts"

/** The partition holding a namespace's history. NUL never occurs in a namespace. */
export const historyPartition = (location: Location): string => `${location.namespace}\u0000history`

/** Moves and reads superseded events. */
export class HistoryArea extends Context.Service<HistoryArea, {
  /** The live events of a key older than `seq`, oldest first. */
  readonly superseded: (key: string, seq: number) => Stream.Stream<StoredItem, Throttled | StorageFailure>
  /** Copies an event into the history area; `expiresAt` (epoch seconds) lets DynamoDB's TTL remove it. */
  readonly archive: (stored: StoredItem, expiresAt: number | undefined) => Effect.Effect<void, Throttled | StorageFailure>
  /** Removes an event from the live range (only ever a superseded one). */
  readonly removeLive: (stored: StoredItem) => Effect.Effect<void, Throttled | StorageFailure>
  /** A key's archived events, oldest first. */
  readonly archived: (key: string) => Stream.Stream<StoredItem, Throttled | StorageFailure>
}>()("dynastate/HistoryArea") {
  /** The history area of the event table's namespace. */
  static readonly layer: Layer.Layer<HistoryArea, never, EventTable | Dynamo> = Layer.effect(HistoryArea, Effect.gen(function*() {
    const table = yield* EventTable
    const dynamo = yield* Dynamo
    const location = table.location
    const partition = historyPartition(location)
    return HistoryArea.of({
      superseded: (key, seq) =>
        seq <= 1
          ? Stream.empty
          // Sort keys invert seq: a descending scan from (seq - 1) down is oldest-first up to seq - 1.
          : table.scan({ lower: SortKey.encode(key, seq - 1), upper: SortKey.upperBound(key), descending: true }),
      archive: (stored, expiresAt) =>
        dynamo.call("PutItem", (client, abortSignal) =>
          client.send(
            new PutItemCommand({
              TableName: location.table,
              Item: {
                ...stored.item,
                [Attr.partition]: { S: partition },
                ...(expiresAt === undefined ? {} : { [Attr.ttl]: { N: String(expiresAt) } })
              }
            }),
            { abortSignal }
          )
        ).pipe(Effect.asVoid),
      removeLive: (stored) =>
        dynamo.call("DeleteItem", (client, abortSignal) =>
          client.send(
            new DeleteItemCommand({
              TableName: location.table,
              Key: { [Attr.partition]: { S: location.namespace }, [Attr.sort]: stored.item[Attr.sort]! }
            }),
            { abortSignal }
          )
        ).pipe(Effect.asVoid),
      archived: (key) =>
        table.scan({ lower: SortKey.lowerBound(key), upper: SortKey.upperBound(key), descending: true, partition })
    })
  }))
}
