/**
 * The event log in DynamoDB: conditional appends, the newest event of a key,
 * paged range queries and transactions. Every read is strongly consistent.
 */
import { DeleteItemCommand, QueryCommand, TransactWriteItemsCommand } from "@aws-sdk/client-dynamodb"
import type { TransactWriteItem } from "@aws-sdk/client-dynamodb"
import { Context, Data, Effect, Layer, Option, Result, Stream } from "effect"
import { DecryptionFailed, StorageFailure } from "../domain/Errors.ts"
import type { Shredded, TableError, Throttled, ValueTooLarge } from "../domain/Errors.ts"
import type { Event } from "../domain/Event.ts"
import { carriesValue } from "../domain/Event.ts"
import * as SortKey from "../domain/SortKey.ts"
import { toleratedSkewMillis } from "../domain/WriteFence.ts"
import type { Landing } from "../domain/WriteFence.ts"
import * as ChunkArea from "./ChunkArea.ts"
import { DataKeys } from "./crypto/DataKeys.ts"
import type { KeyringError } from "./crypto/Keyring.ts"
import type { AttributeMap, Deadline, TransactionCanceled } from "./Dynamo.ts"
import { conditionalPut, Dynamo } from "./Dynamo.ts"
import * as EventPage from "./EventPage.ts"
import * as EventRecord from "./EventRecord.ts"
import type { Location, StoredEvent, StoredItem } from "./EventRecord.ts"
import * as GraveRecord from "./GraveRecord.ts"
import { hotSpan } from "./HotSpan.ts"
import * as PartitionedQuery from "./PartitionedQuery.ts"
import { keyPartition } from "./PartitionKeys.ts"
import * as Predecessors from "./Predecessors.ts"
import type { Predecessor } from "./Predecessors.ts"
import * as QueryPages from "./QueryPages.ts"
import * as ValueChunks from "./ValueChunks.ts"
import type { Compression } from "./ValueChunks.ts"

const { Attr } = EventRecord

/** Another writer appended this seq first; `winner` is its event when DynamoDB returned it. */
export class AppendConflict extends Data.TaggedError("AppendConflict")<{
  readonly winner: Event | undefined
}> {}

export type { StoredEvent } from "./EventRecord.ts"
export type { Predecessor } from "./Predecessors.ts"

/** Bounds of a range query over sort keys, inclusive. */
export interface SortKeyRange {
  readonly lower: Uint8Array
  readonly upper: Uint8Array
  readonly descending: boolean
  /** The history area beside each live partition rather than the live events. */
  readonly area?: "history" | undefined
  /** Request each next page as soon as the one before arrives (see `QueryPages`): for readers of the whole range. */
  readonly readAhead?: boolean | undefined
}

/**
 * One write of a transaction: append an event, or check that no event follows `seq` of `key`; with `after`, also
 * check that the predecessor it was decided on is still in place (strict writes).
 */
export type TransactionWrite =
  | { readonly _tag: "Append"; readonly event: Event; readonly after?: Predecessor | undefined }
  | {
    readonly _tag: "Unchanged"
    readonly key: string
    readonly seq: number
    readonly after?: Predecessor | undefined
  }

/** The most items DynamoDB takes in one transaction. */
export const maxTransactionItems = 100

/** How many items of a transaction `writes` take: one each, plus its predecessor's checks. */
export const transactionItems = (writes: ReadonlyArray<TransactionWrite>): number =>
  writes.reduce((sum, write) => sum + 1 + (write.after === undefined ? 0 : write.after._tag === "None" ? 2 : 1), 0)

/** Failures of reads. */
export type ReadError = TableError | DecryptionFailed | Shredded | KeyringError

/** The event log of one namespace of one table. */
export class EventTable extends Context.Service<EventTable, {
  readonly location: Location
  /**
   * Appends an event if its seq is free; a retry of our own lost write counts as success. Past `deadline` the write
   * is given up (its outcome unknown) and the call fails with the deadline's failure.
   */
  readonly append: (
    event: Event,
    deadline?: Deadline
  ) => Effect.Effect<void, AppendConflict | ValueTooLarge | ReadError>
  /**
   * Appends an event in a transaction that also checks its predecessor is still in place (strict writes, no
   * time assumption): a changed predecessor is an `AppendConflict` with no winner, to be read again.
   */
  readonly appendAfter: (
    event: Event,
    after: Predecessor,
    deadline?: Deadline
  ) => Effect.Effect<void, AppendConflict | ValueTooLarge | ReadError>
  /** The predecessor check for a write decided on `latest`, as this table read it (live, buried or none). */
  readonly predecessor: (latest: Event | undefined) => Predecessor
  /**
   * The newest event of a key, its value decrypted (`Shredded` if its data key
   * was destroyed); for a key whose tombstone was buried, that tombstone.
   */
  readonly latest: (key: string) => Effect.Effect<Option.Option<Event>, ReadError>
  /** The newest event of a key for deciding writes: a shredded value comes back marked, not as a failure. */
  readonly latestState: (key: string) => Effect.Effect<Option.Option<Event>, ReadError>
  /**
   * The events of a sort-key range, not decrypted, page by page (pages are DynamoDB's, up to 1 MB): range
   * reads decide by their clear attributes what to decrypt (most skip superseded events).
   */
  readonly scan: (range: SortKeyRange) => Stream.Stream<StoredEvent, TableError>
  /**
   * The buried tombstones of the graves filed from `lower` to `upper`
   * (inclusive; a grave is filed under `key ‖ 0x00`), in key order, as the
   * events they were in the live range (see `GraveRecord`).
   */
  readonly graves: (lower: Uint8Array, upper: Uint8Array) => Stream.Stream<StoredEvent, TableError>
  /**
   * Decrypts an event read without decrypting ({@link scan}, the history area, a stream record, a view). With
   * `readChunks: false` a value stored in chunks is left unread: the event item's manifest is decrypted and checked,
   * so the item authenticates as one holding its value whole does, and the event comes without `value` (a tampered
   * chunk then goes unseen until someone reads the value).
   */
  readonly decode: (stored: { readonly item: StoredItem }, options?: DecodeOptions) => Effect.Effect<Event, ReadError>
  /**
   * Decrypts a page of events as {@link decode} does each, in order, in one step where their data keys are at hand
   * (see `EventPage`): what range reads decode with. The first event that fails to decode fails the page.
   */
  readonly decodeAll: (
    stored: ReadonlyArray<{ readonly item: StoredItem }>,
    options?: DecodeOptions
  ) => Effect.Effect<Array<Event>, ReadError>
  /**
   * Where an event this process appended stands now (see `WriteFence.Landing`): read after an acknowledgement
   * that came later than the write timeout, when compaction may have freed the seq it landed in.
   */
  readonly landing: (event: Event) => Effect.Effect<Landing, ReadError>
  /** Deletes an appended event again if it is still there with its revision; whether it was deleted. */
  readonly undo: (event: Event) => Effect.Effect<boolean, TableError>
  /** Writes all or nothing; `token` makes a retried call idempotent for 10 minutes. */
  readonly transact: (
    writes: ReadonlyArray<TransactionWrite>,
    token: string,
    deadline?: Deadline
  ) => Effect.Effect<void, TransactionCanceled | ValueTooLarge | KeyringError | TableError>
}>()("dynastate/EventTable") {
  /**
   * The event table at a location, over the `Dynamo` client and the `DataKeys` that encrypt its values; values
   * stored in chunks are compressed first when `compression` says so (off by default).
   */
  static readonly layer = (
    location: Location,
    options?: EventTableOptions
  ): Layer.Layer<EventTable, never, Dynamo | DataKeys> => Layer.effect(EventTable, make(location, options))
}

/** How {@link EventTable} decodes an event. */
export interface DecodeOptions {
  /** Whether to read the chunks of a value stored in chunks (see `ValueChunks`); true unless set. */
  readonly readChunks?: boolean | undefined
}

/** How an event table writes. */
export interface EventTableOptions {
  /** Compression of values stored in chunks, before encryption; `none` unless set (see `ValueChunks`). */
  readonly compression?: Compression | undefined
}

const appendSpan = hotSpan("EventTable.append")
const latestSpan = hotSpan("EventTable.latest")
const latestStateSpan = hotSpan("EventTable.latestState")

const make = Effect.fnUntraced(function*(location: Location, options?: EventTableOptions) {
  const dynamo = yield* Dynamo
  const dataKeys = yield* DataKeys
  const withKeyring = Effect.provideService(DataKeys, dataKeys)
  const chunks = ChunkArea.make(dynamo, location)
  const compression = options?.compression ?? "none"
  // Only an item naming chunks pays for reading them.
  const assemble: EventRecord.Assemble = (event, manifest, count) =>
    Effect.flatMap(chunks.read(event, count), (items) => ValueChunks.assemble(location, event, manifest, count, items))
  // Only the manifest is checked: the event item authenticates without its chunks' megabytes.
  const manifestOnly: EventRecord.Assemble = (event, manifest) =>
    Effect.as(ValueChunks.checkManifest(event, manifest), undefined)
  const decodeItem = (item: StoredItem) => EventPage.decodeOne(location, item, { assemble }).pipe(withKeyring)
  const decodeState = (item: StoredItem) =>
    EventPage.decodeOne(location, item, { tolerateShredded: true, assemble }).pipe(withKeyring)
  const isLarge = (event: Event) =>
    event.value !== undefined && ValueChunks.isLarge(location, event.key, event.value.length, event.realKey)
  /**
   * The item of an event made without an effect, when its value is small and its data keys are at hand: nearly
   * every write. Undefined otherwise (see `encodeLater`).
   */
  const encodeAtHand = (event: Event) =>
    isLarge(event) ? undefined : EventRecord.encodeAtHand(location, event, dataKeys)
  /**
   * The item of an event `encodeAtHand` cannot make: its chunk items written first when its value is large (the
   * item's conditional write is what makes the value exist, so a reader never meets an event whose chunks are not
   * all there), or its data key made first.
   */
  const encodeLater = (event: Event): Effect.Effect<AttributeMap, ValueTooLarge | KeyringError | TableError> =>
    isLarge(event)
      ? Effect.flatMap(
        ValueChunks.split(location, event, compression).pipe(withKeyring),
        (split) => Effect.as(chunks.write(split), split.item)
      )
      : EventRecord.encode(location, event).pipe(withKeyring)
  /** The item of an event, made as `encodeAtHand` or `encodeLater` can. */
  const encodeWritten = (event: Event): Effect.Effect<AttributeMap, ValueTooLarge | KeyringError | TableError> => {
    const atHand = encodeAtHand(event)
    return atHand === undefined ? encodeLater(event) : Effect.fromResult(atHand)
  }
  /** Chunks of an event that lost its append: removed now rather than by the worker's collection later. */
  const dropChunks = (event: Event) => isLarge(event) ? Effect.ignore(chunks.remove(event)) : Effect.void
  const rangeQuery = (partition: string, lower: Uint8Array, upper: Uint8Array) =>
    EventRecord.rangeQuery(location.table, partition, lower, upper)

  const append = (event: Event, deadline?: Deadline) => appendSpan(appendEvent(event, deadline))
  // Not a generator: every write comes through here, and nearly every one is a cached put that succeeds. Suspended,
  // so the item is built and encrypted when the append runs, not when it is made.
  const appendEvent = (
    event: Event,
    deadline: Deadline | undefined
  ): Effect.Effect<void, AppendConflict | ValueTooLarge | ReadError> =>
    Effect.suspend(() => {
      const atHand = encodeAtHand(event)
      if (atHand === undefined) return Effect.flatMap(encodeLater(event), (item) => putEvent(event, item, deadline))
      return Result.isSuccess(atHand) ? putEvent(event, atHand.success, deadline) : Effect.fail(atHand.failure)
    })
  const putEvent = (event: Event, item: AttributeMap, deadline: Deadline | undefined) =>
    Effect.matchEffect(
      conditionalPut(dynamo, {
        TableName: location.table,
        Item: item,
        ConditionExpression: "attribute_not_exists(#sk)",
        ExpressionAttributeNames: { "#sk": Attr.sort },
        ReturnValuesOnConditionCheckFailure: "ALL_OLD"
      }, deadline),
      {
        onSuccess: () => Effect.void,
        onFailure: (failure) =>
          failure._tag === "ConditionalCheckFailed" ? conflictOf(event, failure.item) : Effect.fail(failure)
      }
    )
  /** An append found its seq taken by `existing`: a conflict, unless that is the event itself. */
  const conflictOf = Effect.fnUntraced(function*(event: Event, existing: AttributeMap | undefined) {
    // Our own event already there: the SDK retried a request whose response was lost.
    if (existing?.[Attr.revision]?.S === event.revision) return
    yield* dropChunks(event)
    return yield* new AppendConflict({ winner: existing ? yield* decodeState(existing) : undefined })
  })

  // Not a generator: every get and every write that reads first comes through here.
  const newest = (key: string, decoder: typeof decodeItem): Effect.Effect<Option.Option<Event>, ReadError> =>
    Effect.flatMap(
      dynamo.call("Query", (client, abortSignal) =>
        client.send(
          new QueryCommand({
            ...rangeQuery(keyPartition(location, key), SortKey.lowerBound(key), SortKey.upperBound(key)),
            Limit: 1
          }),
          { abortSignal }
        )),
      (output) => {
        const first = output.Items?.[0]
        // Read after the live range: burial files the grave before it removes the tombstone.
        return first === undefined ? buried(key) : Effect.map(decoder(first), Option.some)
      }
    )

  /** Tombstones this table read from a grave: a strict write after one checks the grave, not the live range. */
  const buriedEvents = new WeakSet<Event>()

  /** The tombstone of a key whose live range is empty, if it was ever deleted. */
  const buried = (key: string) =>
    Effect.gen(function*() {
      const grave = yield* GraveRecord.read(dynamo, location, key)
      if (grave === undefined) return Option.none<Event>()
      const tombstone = yield* decodeItem(GraveRecord.toTombstone(location, grave))
      // A grave only ever holds a tombstone: one holding a value would bring a deleted key back.
      if (tombstone.key !== key || carriesValue(tombstone)) {
        return yield* new DecryptionFailed({
          key,
          seq: tombstone.seq,
          reason: "the key's grave does not hold its tombstone"
        })
      }
      buriedEvents.add(tombstone)
      return Option.some(tombstone)
    })
  const latest = (key: string) => newest(key, decodeItem).pipe(latestSpan)
  const latestState = (key: string) => newest(key, decodeState).pipe(latestStateSpan)

  /**
   * Every page of a Query, lazily (one ahead with `readAhead`, see `QueryPages`), its items parsed by `parse` (an item
   * it refuses is a `StorageFailure`).
   */
  const pages = (
    query: (startKey: AttributeMap | undefined) => QueryCommand,
    parse: (item: AttributeMap) => Result.Result<StoredEvent, string>,
    operation: string,
    readAhead = false
  ): Stream.Stream<StoredEvent, Throttled | StorageFailure> =>
    QueryPages.pages(
      (startKey: AttributeMap | undefined) =>
        dynamo.call("Query", (client, abortSignal) => client.send(query(startKey), { abortSignal })).pipe(
          Effect.flatMap((output) => {
            // A plain loop: an effect per item cost more than parsing it.
            const items: Array<StoredEvent> = []
            for (const item of output.Items ?? []) {
              const parsed = parse(item)
              if (Result.isFailure(parsed)) {
                return Effect.fail(new StorageFailure({ operation, reason: parsed.failure }))
              }
              items.push(parsed.success)
            }
            return Effect.succeed([items, Option.fromNullishOr(output.LastEvaluatedKey)] as const)
          })
        ),
      { readAhead }
    )

  const scan = (range: SortKeyRange): Stream.Stream<StoredEvent, Throttled | StorageFailure> =>
    PartitionedQuery.merged(location, range, range, (partition) =>
      pages(
        (startKey) =>
          new QueryCommand({
            ...rangeQuery(partition, range.lower, range.upper),
            ScanIndexForward: !range.descending,
            ExclusiveStartKey: startKey
          }),
        EventRecord.peek,
        "read events",
        range.readAhead === true
      ))

  const graves = (lower: Uint8Array, upper: Uint8Array): Stream.Stream<StoredEvent, Throttled | StorageFailure> =>
    Buffer.compare(lower, upper) > 0 ? Stream.empty : PartitionedQuery.merged(
      location,
      { lower, upper },
      { descending: false, area: "graves" },
      (partition) =>
        pages(
          (startKey) => new QueryCommand({ ...rangeQuery(partition, lower, upper), ExclusiveStartKey: startKey }),
          (grave) => GraveRecord.buriedTombstone(location, grave),
          "read graves"
        )
    )

  const landing = Effect.fn("EventTable.landing")(function*(event: Event) {
    const output = yield* dynamo.call("Query", (client, abortSignal) =>
      client.send(
        new QueryCommand({
          // Newer events sort first: ours, then the one right after it.
          ...rangeQuery(
            keyPartition(location, event.key),
            SortKey.lowerBound(event.key),
            SortKey.encode(event.key, event.seq)
          ),
          ScanIndexForward: false,
          Limit: 2
        }),
        { abortSignal }
      ))
    const [first, second] = output.Items ?? []
    // Gone from the live range: compaction moved (or buried) it, which it does only to a superseded event.
    if (first?.[Attr.revision]?.S !== event.revision) return "Superseded" as const
    const grave = yield* buried(event.key)
    // Live, at or under the key's buried tombstone: it landed after the burial, which needs every older seq free.
    // Unless the grave holds this very event: a burial files the grave before the tombstone leaves the live range.
    const buriedHere = Option.isSome(grave) && grave.value.seq === event.seq && grave.value.revision === event.revision
    if (Option.isSome(grave) && grave.value.seq >= event.seq && !buriedHere) return "Freed" as const
    if (second === undefined) return "Newest" as const
    const peeked = EventRecord.peek(second)
    const after = Result.isSuccess(peeked) ? peeked.success : undefined
    // A gap above ours, or an event decided before ours right above it, was there first: ours went into a seq freed
    // below it. Decision times come from different machines' clocks, so "before" allows for their skew; an event
    // decided within the skew before ours must have settled before ours landed, which takes longer than AWS
    // accepts a signed request.
    const followed = after !== undefined && after.seq === event.seq + 1 &&
      (after.timestamp ?? 0) >= event.timestamp - toleratedSkewMillis
    return followed ? "Superseded" as const : "Freed" as const
  })

  const undo = Effect.fn("EventTable.undo")(function*(event: Event) {
    const outcome = yield* dynamo.callConditional("DeleteItem", (client, abortSignal) =>
      client.send(
        new DeleteItemCommand({
          TableName: location.table,
          Key: {
            [Attr.partition]: { S: keyPartition(location, event.key) },
            [Attr.sort]: { B: SortKey.encode(event.key, event.seq) }
          },
          ConditionExpression: "#rev = :rev",
          ExpressionAttributeNames: { "#rev": Attr.revision },
          ExpressionAttributeValues: { ":rev": { S: event.revision } }
        }),
        { abortSignal }
      )).pipe(
        Effect.as(true),
        Effect.catchTag("ConditionalCheckFailed", () => Effect.succeed(false))
      )
    if (outcome) yield* dropChunks(event)
    return outcome
  })

  const appendAfter = Effect.fn("EventTable.appendAfter")(function*(
    event: Event,
    after: Predecessor,
    deadline?: Deadline
  ) {
    // A revision names one event (a UUID): retries of this transaction are idempotent, never another's.
    const outcome = yield* Effect.result(transact([{ _tag: "Append", event, after }], event.revision, deadline))
    if (outcome._tag === "Success") return
    const error = outcome.failure
    if (error._tag !== "TransactionCanceled") return yield* Effect.fail(error)
    const [put, ...checks] = error.reasons
    if (put?.Code === "ConditionalCheckFailed") {
      const existing = put.Item
      // Our own event already there: a retried transaction whose response was lost.
      if (existing?.[Attr.revision]?.S === event.revision) return
      yield* dropChunks(event)
      return yield* new AppendConflict({ winner: existing ? yield* decodeState(existing) : undefined })
    }
    // A conflict on any item (a compaction burying into the grave checked) is a changed predecessor as well.
    const changed = checks.some((check) => check.Code === "ConditionalCheckFailed")
    if (changed || error.reasons.some((reason) => reason.Code === "TransactionConflict")) {
      return yield* new AppendConflict({ winner: undefined })
    }
    const codes = error.reasons.map((reason) => reason.Code ?? "None").join(", ")
    return yield* new StorageFailure({ operation: "append", reason: `transaction cancelled: ${codes}` })
  })

  const predecessor = (latest: Event | undefined): Predecessor =>
    latest === undefined
      ? { _tag: "None" }
      : buriedEvents.has(latest)
      ? { _tag: "Buried", revision: latest.revision }
      : { _tag: "Live", seq: latest.seq, revision: latest.revision }

  // A large value's chunks are written before the transaction (which holds at most 100 items and 4 MB), one value
  // after the other; a cancelled transaction leaves them to the worker's collection: a retry with the same token
  // may have committed the very events they belong to.
  const transact = Effect.fn("EventTable.transact")(function*(
    writes: ReadonlyArray<TransactionWrite>,
    token: string,
    deadline?: Deadline
  ) {
    const items: Array<TransactWriteItem> = []
    for (const write of writes) {
      if (write._tag === "Append") {
        items.push({
          Put: {
            TableName: location.table,
            Item: yield* encodeWritten(write.event),
            ConditionExpression: "attribute_not_exists(#sk)",
            ExpressionAttributeNames: { "#sk": Attr.sort },
            ReturnValuesOnConditionCheckFailure: "ALL_OLD"
          }
        })
      } else {
        items.push({
          ConditionCheck: {
            TableName: location.table,
            Key: {
              [Attr.partition]: { S: keyPartition(location, write.key) },
              [Attr.sort]: { B: SortKey.encode(write.key, write.seq + 1) }
            },
            ConditionExpression: "attribute_not_exists(#sk)",
            ExpressionAttributeNames: { "#sk": Attr.sort },
            ReturnValuesOnConditionCheckFailure: "ALL_OLD"
          }
        })
      }
    }
    for (const write of writes) {
      if (write.after === undefined) continue
      const key = write._tag === "Append" ? write.event.key : write.key
      items.push(
        ...Predecessors.items(location, key, write.after, write._tag === "Append" ? write.event.revision : undefined)
      )
    }
    yield* dynamo.callTransaction(
      "TransactWriteItems",
      (client, abortSignal) =>
        client.send(new TransactWriteItemsCommand({ TransactItems: items, ClientRequestToken: token }), {
          abortSignal
        }),
      deadline
    )
  })

  return EventTable.of({
    location,
    append,
    latest,
    latestState,
    scan,
    graves,
    decode: (stored, options) =>
      options?.readChunks === false
        ? EventRecord.decode(location, stored.item, { assemble: manifestOnly }).pipe(withKeyring)
        : decodeItem(stored.item),
    decodeAll: (stored, options) =>
      EventPage.decodeAll(location, stored.map((each) => each.item), {
        assemble: options?.readChunks === false ? manifestOnly : assemble
      }).pipe(withKeyring),
    landing,
    undo,
    appendAfter,
    predecessor,
    transact
  })
})
