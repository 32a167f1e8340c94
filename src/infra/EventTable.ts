/**
 * The event log in DynamoDB: conditional appends, the newest event of a key,
 * paged range queries and transactions. Every read is strongly consistent.
 */
import { GetItemCommand, PutItemCommand, QueryCommand, TransactWriteItemsCommand } from "@aws-sdk/client-dynamodb"
import type { TransactWriteItem } from "@aws-sdk/client-dynamodb"
import { Context, Data, Effect, Layer, Option, Stream } from "effect"
import { DecryptionFailed, StorageFailure } from "../domain/Errors.ts"
import type { Shredded, Throttled, ValueTooLarge } from "../domain/Errors.ts"
import type { Event } from "../domain/Event.ts"
import { carriesValue } from "../domain/Event.ts"
import * as Key from "../domain/Key.ts"
import * as SortKey from "../domain/SortKey.ts"
import type { KeyringError } from "./crypto/Keyring.ts"
import { DataKeys } from "./crypto/DataKeys.ts"
import type { AttributeMap, TransactionCanceled } from "./Dynamo.ts"
import { Dynamo } from "./Dynamo.ts"
import * as EventRecord from "./EventRecord.ts"
import type { Location } from "./EventRecord.ts"
import * as GraveRecord from "./GraveRecord.ts"

const { Attr } = EventRecord

/** Another writer appended this seq first; `winner` is its event when DynamoDB returned it. */
export class AppendConflict extends Data.TaggedError("AppendConflict")<{
  readonly winner: Event | undefined
}> {}

/** An item read from the table, not yet decrypted (most range reads skip superseded events). */
export interface StoredItem {
  readonly key: string
  readonly seq: number
  readonly item: AttributeMap
}

/** Bounds of a range query over sort keys, inclusive. */
export interface SortKeyRange {
  readonly lower: Uint8Array
  readonly upper: Uint8Array
  readonly descending: boolean
  /** Another partition than the namespace's live events (the history area). */
  readonly partition?: string | undefined
}

/** One write of a transaction: append an event, or check that no event follows `seq` of `key`. */
export type TransactionWrite =
  | { readonly _tag: "Append"; readonly event: Event }
  | { readonly _tag: "Unchanged"; readonly key: string; readonly seq: number }

/** Failures of reads. */
export type ReadError = Throttled | StorageFailure | DecryptionFailed | Shredded | KeyringError

/** The event log of one namespace of one table. */
export class EventTable extends Context.Service<EventTable, {
  readonly location: Location
  /** Appends an event if its seq is free; a retry of our own lost write counts as success. */
  readonly append: (event: Event) => Effect.Effect<void, AppendConflict | ValueTooLarge | ReadError>
  /**
   * The newest event of a key, its value decrypted (`Shredded` if its data key
   * was destroyed); for a key whose tombstone was buried, that tombstone.
   */
  readonly latest: (key: string) => Effect.Effect<Option.Option<Event>, ReadError>
  /** The newest event of a key for deciding writes: a shredded value comes back marked, not as a failure. */
  readonly latestState: (key: string) => Effect.Effect<Option.Option<Event>, ReadError>
  /** The items of a sort-key range, page by page (pages are DynamoDB's, up to 1 MB). */
  readonly scan: (range: SortKeyRange) => Stream.Stream<StoredItem, Throttled | StorageFailure>
  /**
   * The buried tombstones of the graves filed from `lower` to `upper`
   * (inclusive; a grave is filed under `key ‖ 0x00`), in key order, as the
   * items they were in the live range (see `GraveRecord`).
   */
  readonly graves: (lower: Uint8Array, upper: Uint8Array) => Stream.Stream<StoredItem, Throttled | StorageFailure>
  /** Decrypts an item from {@link scan}. */
  readonly decode: (stored: StoredItem) => Effect.Effect<Event, ReadError>
  /** Writes all or nothing; `token` makes a retried call idempotent for 10 minutes. */
  readonly transact: (
    writes: ReadonlyArray<TransactionWrite>,
    token: string
  ) => Effect.Effect<void, TransactionCanceled | ValueTooLarge | KeyringError | Throttled | StorageFailure>
}>()("dynastate/EventTable") {
  /** The event table at a location, over the `Dynamo` client and the `DataKeys` that encrypt its values. */
  static readonly layer = (location: Location): Layer.Layer<EventTable, never, Dynamo | DataKeys> =>
    Layer.effect(EventTable, make(location))
}

const make = Effect.fnUntraced(function*(location: Location) {
  const dynamo = yield* Dynamo
  const dataKeys = yield* DataKeys
  const withKeyring = Effect.provideService(DataKeys, dataKeys)
  const decodeItem = (item: AttributeMap) => EventRecord.decode(location, item).pipe(withKeyring)
  const decodeState = (item: AttributeMap) => EventRecord.decode(location, item, { tolerateShredded: true }).pipe(withKeyring)
  /** A consistent Query of one partition's sort-key range, inclusive. */
  const rangeQuery = (partition: string, lower: Uint8Array, upper: Uint8Array) => ({
    TableName: location.table,
    KeyConditionExpression: "#pk = :pk AND #sk BETWEEN :lower AND :upper",
    ExpressionAttributeNames: { "#pk": Attr.partition, "#sk": Attr.sort },
    ExpressionAttributeValues: { ":pk": { S: partition }, ":lower": { B: lower }, ":upper": { B: upper } },
    ConsistentRead: true
  })

  const append = Effect.fn("EventTable.append")(function*(event: Event) {
    const item = yield* EventRecord.encode(location, event).pipe(withKeyring)
    const outcome = yield* dynamo.callConditional("PutItem", (client, abortSignal) =>
      client.send(
        new PutItemCommand({
          TableName: location.table,
          Item: item,
          ConditionExpression: "attribute_not_exists(#sk)",
          ExpressionAttributeNames: { "#sk": Attr.sort },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD"
        }),
        { abortSignal }
      )
    ).pipe(
      Effect.map(() => undefined),
      Effect.catchTag("ConditionalCheckFailed", (failure) => Effect.succeed(failure))
    )
    if (outcome === undefined) return
    const existing = outcome.item
    // Our own event already there: the SDK retried a request whose response was lost.
    if (existing?.[Attr.revision]?.S === event.revision) return
    return yield* new AppendConflict({ winner: existing ? yield* decodeState(existing) : undefined })
  })

  const newest = (key: string, decoder: typeof decodeItem) => Effect.gen(function*() {
    const output = yield* dynamo.call("Query", (client, abortSignal) =>
      client.send(
        new QueryCommand({ ...rangeQuery(location.namespace, SortKey.lowerBound(key), SortKey.upperBound(key)), Limit: 1 }),
        { abortSignal }
      )
    )
    const first = output.Items?.[0]
    if (first !== undefined) return Option.some(yield* decoder(first))
    // Read after the live range: burial writes the grave in the same transaction that removes the tombstone.
    return yield* buried(key)
  })

  /** The tombstone of a key whose live range is empty, if it was ever deleted. */
  const buried = (key: string) => Effect.gen(function*() {
    const output = yield* dynamo.call("GetItem", (client, abortSignal) =>
      client.send(
        new GetItemCommand({ TableName: location.table, Key: GraveRecord.graveKey(location, key), ConsistentRead: true }),
        { abortSignal }
      )
    )
    if (output.Item === undefined) return Option.none<Event>()
    const tombstone = yield* decodeItem(GraveRecord.toTombstone(location, output.Item))
    // A grave only ever holds a tombstone: one holding a value would bring a deleted key back.
    if (tombstone.key !== key || carriesValue(tombstone)) {
      return yield* new DecryptionFailed({ key, seq: tombstone.seq, reason: "the key's grave does not hold its tombstone" })
    }
    return Option.some(tombstone)
  })
  const latest = Effect.fn("EventTable.latest")((key: string) => newest(key, decodeItem))
  const latestState = Effect.fn("EventTable.latestState")((key: string) => newest(key, decodeState))

  const scan = (range: SortKeyRange): Stream.Stream<StoredItem, Throttled | StorageFailure> =>
    Stream.paginate(undefined as AttributeMap | undefined, (startKey) =>
      dynamo.call("Query", (client, abortSignal) =>
        client.send(
          new QueryCommand({
            ...rangeQuery(range.partition ?? location.namespace, range.lower, range.upper),
            ScanIndexForward: !range.descending,
            ExclusiveStartKey: startKey
          }),
          { abortSignal }
        )
      ).pipe(
        Effect.map((output) => {
          const items = (output.Items ?? []).map((item): StoredItem => {
            const { key, seq } = SortKey.decode(item[Attr.sort]!.B!)
            return { key, seq, item }
          })
          return [items, Option.fromNullishOr(output.LastEvaluatedKey)] as const
        })
      )
    )

  /** The tombstone a grave holds, as it stood in the live range; a grave holding anything else is corrupt. */
  const buriedTombstone = (grave: AttributeMap): Effect.Effect<StoredItem, StorageFailure> => {
    const corrupt = (reason: string) => Effect.fail(new StorageFailure({ operation: "read graves", reason }))
    const item = GraveRecord.toTombstone(location, grave)
    const sortKey = item[Attr.sort]?.B
    if (sortKey === undefined || sortKey.length <= Key.sortKeySuffixBytes) return corrupt("a grave has no tombstone sort key")
    const { key, seq } = SortKey.decode(sortKey)
    if (Buffer.compare(SortKey.keyPrefix(key), grave[Attr.sort]?.B ?? new Uint8Array()) !== 0) {
      return corrupt(`the grave of ${key} is filed under another key`)
    }
    const op = item[Attr.op]?.S
    if (op !== "delete" && op !== "expire") return corrupt(`the grave of ${key} does not hold a tombstone`)
    return Effect.succeed({ key, seq, item })
  }

  const graves = (lower: Uint8Array, upper: Uint8Array): Stream.Stream<StoredItem, Throttled | StorageFailure> =>
    Buffer.compare(lower, upper) > 0 ? Stream.empty : Stream.paginate(undefined as AttributeMap | undefined, (startKey) =>
      dynamo.call("Query", (client, abortSignal) =>
        client.send(
          new QueryCommand({ ...rangeQuery(GraveRecord.gravePartition(location), lower, upper), ExclusiveStartKey: startKey }),
          { abortSignal }
        )
      ).pipe(
        Effect.flatMap((output) =>
          Effect.map(
            Effect.forEach(output.Items ?? [], buriedTombstone),
            (items) => [items, Option.fromNullishOr(output.LastEvaluatedKey)] as const
          )
        )
      ))

  const transact = Effect.fn("EventTable.transact")(function*(writes: ReadonlyArray<TransactionWrite>, token: string) {
    const items: Array<TransactWriteItem> = []
    for (const write of writes) {
      if (write._tag === "Append") {
        items.push({
          Put: {
            TableName: location.table,
            Item: yield* EventRecord.encode(location, write.event).pipe(withKeyring),
            ConditionExpression: "attribute_not_exists(#sk)",
            ExpressionAttributeNames: { "#sk": Attr.sort },
            ReturnValuesOnConditionCheckFailure: "ALL_OLD"
          }
        })
      } else {
        items.push({
          ConditionCheck: {
            TableName: location.table,
            Key: { [Attr.partition]: { S: location.namespace }, [Attr.sort]: { B: SortKey.encode(write.key, write.seq + 1) } },
            ConditionExpression: "attribute_not_exists(#sk)",
            ExpressionAttributeNames: { "#sk": Attr.sort },
            ReturnValuesOnConditionCheckFailure: "ALL_OLD"
          }
        })
      }
    }
    yield* dynamo.callTransaction("TransactWriteItems", (client, abortSignal) =>
      client.send(new TransactWriteItemsCommand({ TransactItems: items, ClientRequestToken: token }), { abortSignal })
    )
  })

  return EventTable.of({
    location,
    append,
    latest,
    latestState,
    scan,
    graves,
    decode: (stored) => decodeItem(stored.item),
    transact
  })
})
