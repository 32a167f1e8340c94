/**
 * The table of an index view: current items of a prefix re-keyed by an index
 * value (users by e-mail, say). The index value is stored only as a keyed
 * hash (a blind index) and values stay encrypted, bound to their event, so a
 * view table leaks no more than the event table. Per store key a small
 * "by-key" item remembers the index entry and seq that are current, which
 * makes applying an event idempotent and moves an item when its index changes.
 */
import { GetItemCommand, QueryCommand, TransactWriteItemsCommand } from "@aws-sdk/client-dynamodb"
import type { TransactWriteItem } from "@aws-sdk/client-dynamodb"
import { Effect, Result } from "effect"
import { StorageFailure } from "../domain/Errors.ts"
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

/** Where the view currently files a key, and up to which seq. */
export const current = (table: string, key: string) =>
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
 * Files the event's key under `index` with the event, encrypted as in the
 * event table and bound to the event (or under no index when `index` is
 * undefined), removing it from `previous`; all or nothing, and only if the
 * event is newer than what the view has. Returns false when the view was
 * already newer; `ValueTooLarge` and keyring failures come from encrypting.
 */
export const move = (
  table: string,
  location: Location,
  event: Event,
  previous: string | undefined,
  index: string | undefined
) =>
  Effect.gen(function*() {
    const { key, seq } = event
    const writes: Array<TransactWriteItem> = []
    if (previous !== undefined && previous !== index) {
      writes.push({ Delete: { TableName: table, Key: { ix: { S: previous }, key: { S: key } } } })
    }
    if (index !== undefined) {
      const item = yield* EventRecord.encode(location, event)
      writes.push({ Put: { TableName: table, Item: { ...item, ix: { S: index }, key: { S: key } } } })
    }
    writes.push({
      Put: {
        TableName: table,
        Item: {
          ix: { S: byKey },
          key: { S: key },
          seq: { N: String(seq) },
          ...(index === undefined ? {} : { index: { S: index } })
        },
        ConditionExpression: "attribute_not_exists(seq) OR seq < :seq",
        ExpressionAttributeValues: { ":seq": { N: String(seq) } }
      }
    })
    const dynamo = yield* Dynamo
    return yield* dynamo.callTransaction("TransactWriteItems", (client, abortSignal) =>
      client.send(new TransactWriteItemsCommand({ TransactItems: writes }), { abortSignal })).pipe(
        Effect.as(true),
        Effect.catchTag("TransactionCanceled", (error) =>
          error.reasons.some((reason) =>
              reason.Code === "ConditionalCheckFailed"
            )
            ? Effect.succeed(false)
            : Effect.fail(
              new StorageFailure({
                operation: "TransactWriteItems",
                reason: error.reasons.map((r) =>
                  r.Code
                ).join(", ")
              })
            ))
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
