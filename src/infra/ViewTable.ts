/**
 * The table of an index view: current items of a prefix re-keyed by an index
 * value (users by e-mail, say). The index value is stored only as a keyed
 * hash (a blind index) and values stay encrypted, bound to their event, so a
 * view table leaks no more than the event table. Per store key a small
 * "by-key" item remembers the index entry and seq that are current, which
 * makes applying an event idempotent and moves an item when its index changes;
 * every move is conditional on that item being exactly what was read, so
 * applies of one key may overlap in any order and still leave the entry of
 * the highest seq (a deleted key keeps its seq there, without an index).
 */
import { GetItemCommand, QueryCommand, TransactWriteItemsCommand } from "@aws-sdk/client-dynamodb"
import type { TransactWriteItem } from "@aws-sdk/client-dynamodb"
import { Effect, Result } from "effect"
import { StorageFailure } from "../domain/Errors.ts"
import type { Throttled } from "../domain/Errors.ts"
import type { Event } from "../domain/Event.ts"
import type { AttributeMap } from "./Dynamo.ts"
import { Dynamo } from "./Dynamo.ts"
import * as EventRecord from "./EventRecord.ts"
import type { Location, StoredEvent } from "./EventRecord.ts"
import * as SideTable from "./SideTable.ts"

/** The partition of the by-key bookkeeping items; a hex hash never starts with NUL. */
const byKey = "\u0000by-key"

/** Creates a view table when missing and waits until it is active. */
export const ensureTable = (table: string) => SideTable.ensure(table, "ix", "key")

/** Where the view files a key and up to which seq (0: never filed), as one read saw it. */
export interface Filed {
  readonly index: string | undefined
  readonly seq: number
}

/** Where the view currently files a key, and up to which seq. */
export const current = (table: string, key: string): Effect.Effect<Filed, Throttled | StorageFailure, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call(
      "GetItem",
      (client, abortSignal) =>
        client.send(
          new GetItemCommand({ TableName: table, Key: { ix: { S: byKey }, key: { S: key } }, ConsistentRead: true }),
          {
            abortSignal
          }
        )
    )
  ).pipe(Effect.map((output) => ({ index: output.Item?.index?.S, seq: Number(output.Item?.seq?.N ?? 0) })))

/**
 * What became of a move: done; or not done because the key's by-key item is no longer what was read
 * (`Moved`: another apply got there first; read again) or another transaction held its items (`Conflict`).
 */
export type MoveOutcome = "Done" | "Moved" | "Conflict"

/**
 * Files the event's key under `index` with the event, encrypted as in the
 * event table and bound to the event (or under no index when `index` is
 * undefined), removing it from where `read` filed it; all or nothing, and only
 * if the view still files the key exactly as `read` says. Checking only that
 * the event is newer would let two overlapping applies of one key (a rebuild
 * beside the worker, a worker whose lease lapsed mid-batch beside the new
 * owner) each remove the entry they read and leave the other's new one
 * behind. `ValueTooLarge` and keyring failures come from encrypting.
 */
export const move = (
  table: string,
  location: Location,
  event: Event,
  read: Filed,
  index: string | undefined
) =>
  Effect.gen(function*() {
    const { key, seq } = event
    const writes: Array<TransactWriteItem> = []
    if (read.index !== undefined && read.index !== index) {
      writes.push({ Delete: { TableName: table, Key: { ix: { S: read.index }, key: { S: key } } } })
    }
    if (index !== undefined) {
      const item = yield* EventRecord.encode(location, event)
      writes.push({ Put: { TableName: table, Item: { ...item, ix: { S: index }, key: { S: key } } } })
    }
    // Seq 0 means the read found no by-key item; an item's index is absent while the key is filed nowhere.
    const sameSeq = read.seq === 0 ? "attribute_not_exists(#seq)" : "#seq = :readSeq"
    const sameIndex = read.index === undefined ? "attribute_not_exists(#index)" : "#index = :readIndex"
    writes.push({
      Put: {
        TableName: table,
        Item: {
          ix: { S: byKey },
          key: { S: key },
          seq: { N: String(seq) },
          ...(index === undefined ? {} : { index: { S: index } })
        },
        ConditionExpression: `${sameSeq} AND ${sameIndex}`,
        ExpressionAttributeNames: { "#seq": "seq", "#index": "index" },
        ...(read.seq === 0 && read.index === undefined ? {} : {
          ExpressionAttributeValues: {
            ...(read.seq === 0 ? {} : { ":readSeq": { N: String(read.seq) } }),
            ...(read.index === undefined ? {} : { ":readIndex": { S: read.index } })
          }
        })
      }
    })
    const dynamo = yield* Dynamo
    return yield* dynamo.callTransaction("TransactWriteItems", (client, abortSignal) =>
      client.send(new TransactWriteItemsCommand({ TransactItems: writes }), { abortSignal })).pipe(
        Effect.as<MoveOutcome>("Done"),
        Effect.catchTag("TransactionCanceled", (error) => {
          const codes = error.reasons.map((reason) =>
            reason.Code ?? "None"
          )
          if (codes.includes("ConditionalCheckFailed")) return Effect.succeed<MoveOutcome>("Moved")
          if (codes.includes("TransactionConflict")) return Effect.succeed<MoveOutcome>("Conflict")
          return Effect.fail(new StorageFailure({ operation: "TransactWriteItems", reason: codes.join(", ") }))
        })
      )
  })

/** The events filed under an index entry, every page of them, still encrypted (decrypt them as the event table's). */
export const filed = (table: string, index: string) =>
  Dynamo.use((dynamo) =>
    Effect.gen(function*() {
      const events: Array<StoredEvent> = []
      let start: AttributeMap | undefined
      do {
        const output = yield* dynamo.call("Query", (client, abortSignal) =>
          client.send(
            new QueryCommand({
              TableName: table,
              KeyConditionExpression: "ix = :ix",
              ExpressionAttributeValues: { ":ix": { S: index } },
              ConsistentRead: true,
              ExclusiveStartKey: start
            }),
            { abortSignal }
          ))
        for (const item of output.Items ?? []) {
          const parsed = EventRecord.peek(item)
          if (Result.isSuccess(parsed)) events.push(parsed.success)
        }
        start = output.LastEvaluatedKey
      } while (start !== undefined)
      return events
    })
  )
