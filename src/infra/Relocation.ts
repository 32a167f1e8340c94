/**
 * Relocation: moves every stored event of one key (its live range, history copies, grave and chunks) to another
 * stored key, possibly at another location, keeping each event's seq, revision, value and expiry, each re-encrypted
 * under the binding of its new place. Sealing an existing prefix moves each clear key to its sealed form; moving a
 * prefix to another partition moves each key to the same key at another location.
 *
 * The move is safe while the store serves, by this protocol:
 * 1. Older events are copied first into the target's history area (a copy of a seq 1 also tells a strict first
 *    append at the target that the key exists). Until step 2 the target has no newest event, so nothing reads them
 *    as the key's state, and a writer of the target resolves the key through its source first (see `Store`).
 * 2. One transaction puts the newest event at the target (live, marked moved so stream consumers skip it; or in the
 *    grave, for a buried tombstone), on the conditions an append checks: nothing at the target's seq and grave,
 *    the source's newest still the one copied, and nothing after it at the source. So a write that reached the
 *    source first makes the move start over, and a second mover learns the first one won.
 * 3. The source's items are deleted, the newest last, so a reader that finds the target empty and reads the source
 *    sees either the newest event or nothing (and then reads the target again).
 * Readers and writers never append to a source (they name the target), so nothing can follow the move there.
 */
import { DeleteItemCommand, TransactWriteItemsCommand } from "@aws-sdk/client-dynamodb"
import type { TransactWriteItem } from "@aws-sdk/client-dynamodb"
import { Effect, Result, Stream } from "effect"
import { RelocationConflict, StorageFailure } from "../domain/Errors.ts"
import type { Throttled, ValueTooLarge } from "../domain/Errors.ts"
import type { Event } from "../domain/Event.ts"
import * as SortKey from "../domain/SortKey.ts"
import * as ChunkArea from "./ChunkArea.ts"
import { DataKeys } from "./crypto/DataKeys.ts"
import type { KeyringError } from "./crypto/Keyring.ts"
import type { AttributeMap } from "./Dynamo.ts"
import { conditionalPut, Dynamo, queryPages } from "./Dynamo.ts"
import * as EventRecord from "./EventRecord.ts"
import type { DecodeError, Location, StoredEvent } from "./EventRecord.ts"
import * as GraveRecord from "./GraveRecord.ts"
import * as HistoryRecord from "./HistoryRecord.ts"
import { keyArea, keyPartition } from "./PartitionKeys.ts"
import * as ValueChunks from "./ValueChunks.ts"

const { Attr } = EventRecord

/** A key's stored events: the location (table, namespace) and the stored key there. */
export interface KeyPlace {
  readonly location: Location
  readonly key: string
}

/** What a relocation found. */
export type Relocated =
  /** The source holds nothing: nothing to move (never written, or moved and cleaned up before). */
  | { readonly _tag: "Absent" }
  /** This call moved `events` events. */
  | { readonly _tag: "Moved"; readonly events: number }
  /** Another mover had moved them; this call removed what was left at the source. */
  | { readonly _tag: "AlreadyMoved" }

/** Failures of a relocation. */
export type RelocationError =
  | RelocationConflict
  | ValueTooLarge
  | DecodeError
  | KeyringError
  | Throttled
  | StorageFailure

/** What a key holds at a place, as stored. */
interface Holdings {
  readonly live: ReadonlyArray<StoredEvent>
  readonly history: ReadonlyArray<StoredEvent>
  /** A freed-seq marker in the history area (history off): it moves too, so strict first appends stay refused. */
  readonly freed: AttributeMap | undefined
  readonly grave: StoredEvent | undefined
}

const isEmpty = (held: Holdings) =>
  held.live.length === 0 && held.history.length === 0 && held.freed === undefined && held.grave === undefined

/** The newest event held: the live range's, or the grave's when it is newer (a buried tombstone). */
const newestOf = (held: Holdings): StoredEvent | undefined => {
  const live = held.live[held.live.length - 1]
  return held.grave !== undefined && (live === undefined || held.grave.seq > live.seq) ? held.grave : live
}

const revisionOf = (stored: StoredEvent): string | undefined => EventRecord.attributesOf(stored.item)[Attr.revision]?.S

/** How many times a move starts over when its source changed under it (only a foreign writer can do that). */
const maxAttempts = 5

/** Relocation over one client and the data keys of both places (a table's keyring encrypts all its namespaces). */
export const make = (dynamo: Dynamo["Service"], dataKeys: DataKeys["Service"]) => {
  const keyQuery = (location: Location, partition: string, key: string) =>
    queryPages(
      EventRecord.rangeQuery(location.table, partition, SortKey.lowerBound(key), SortKey.upperBound(key))
    ).pipe(
      Stream.flatMap((page) => Stream.fromIterable(page.Items ?? [])),
      Stream.provideService(Dynamo, dynamo)
    )

  /** Everything `place` holds, oldest first. */
  const holdings = (place: KeyPlace): Effect.Effect<Holdings, Throttled | StorageFailure> =>
    Effect.gen(function*() {
      const { key, location } = place
      const parse = (item: AttributeMap) => {
        const parsed = EventRecord.peek(item)
        return Result.isSuccess(parsed) && parsed.success.key === key
          ? Effect.succeed(parsed.success)
          : Effect.fail(new StorageFailure({ operation: "relocate", reason: "an item of the key holds no event" }))
      }
      const bySeq = (a: StoredEvent, b: StoredEvent) => a.seq - b.seq
      const live = yield* Stream.runCollect(
        keyQuery(location, keyPartition(location, key), key).pipe(Stream.mapEffect(parse))
      )
      const archived = yield* Stream.runCollect(keyQuery(location, keyArea(location, key, "history"), key))
      const freed = archived.find((item) => HistoryRecord.isFreedMarker(item))
      const history = yield* Effect.forEach(
        archived.filter((item) => !HistoryRecord.isFreedMarker(item)),
        parse
      )
      const stored = yield* GraveRecord.read(dynamo, location, key)
      let grave: StoredEvent | undefined
      if (stored !== undefined) {
        const buried = GraveRecord.buriedTombstone(location, stored)
        if (Result.isFailure(buried)) {
          return yield* new StorageFailure({ operation: "relocate", reason: buried.failure })
        }
        grave = buried.success
      }
      return { live: [...live].sort(bySeq), history: [...history].sort(bySeq), freed, grave }
    })

  const decode = (location: Location, stored: StoredEvent) => {
    const chunks = ChunkArea.make(dynamo, location)
    const assemble: EventRecord.Assemble = (event, manifest, count) =>
      Effect.flatMap(
        chunks.read(event, count),
        (items) => ValueChunks.assemble(location, event, manifest, count, items)
      )
    return EventRecord.decode(location, stored.item, { assemble, tolerateShredded: true }).pipe(
      Effect.provideService(DataKeys, dataKeys)
    )
  }

  /**
   * The item of a stored event re-encrypted for `to`, its chunks written first when its value is large. A shredded
   * value cannot be re-encrypted, and need not be: its ciphertext moves as it is and reads as shredded there too (its
   * data key is gone, which decryption meets before the binding), and its real key is the one it had, if any.
   */
  const encodeAt = (from: Location, to: KeyPlace, realKey: string | undefined, stored: StoredEvent) =>
    Effect.gen(function*() {
      const source = yield* decode(from, stored)
      if (source.shredded !== undefined) {
        const { [Attr.chunks]: _chunks, [Attr.realKey]: _realKey, [Attr.ttl]: _ttl, ...attributes } = EventRecord
          .attributesOf(stored.item)
        return {
          ...attributes,
          [Attr.partition]: { S: keyPartition(to.location, to.key) },
          [Attr.sort]: { B: SortKey.encode(to.key, source.seq) },
          // The manifest of a value in chunks moves without them (they are unreadable): a reader meets the shredding.
          ...(_chunks === undefined ? {} : { [Attr.chunks]: _chunks })
        } as AttributeMap
      }
      // A key sealed already keeps its real key when it moves elsewhere (a partition move passes none).
      const event: Event = { ...source, key: to.key, realKey: realKey ?? source.realKey }
      const large = event.value !== undefined &&
        ValueChunks.isLarge(to.location, event.key, event.value.length, event.realKey)
      if (!large) return yield* EventRecord.encode(to.location, event)
      const split = yield* ValueChunks.split(to.location, event, "none")
      yield* ChunkArea.make(dynamo, to.location).write(split)
      return split.item
    }).pipe(Effect.provideService(DataKeys, dataKeys))

  /** Puts a history item at the target unless it holds one already: the same event, or (`marker`) any marker. */
  const put = (to: KeyPlace, item: AttributeMap, revision: string | undefined) =>
    conditionalPut(dynamo, {
      TableName: to.location.table,
      Item: item,
      // Absent, or this very event (a mover that stopped half way, or another mover).
      ...(revision === undefined
        ? { ConditionExpression: "attribute_not_exists(#sk)", ExpressionAttributeNames: { "#sk": Attr.sort } }
        : {
          ConditionExpression: "attribute_not_exists(#sk) OR #rev = :rev",
          ExpressionAttributeNames: { "#sk": Attr.sort, "#rev": Attr.revision },
          ExpressionAttributeValues: { ":rev": { S: revision } }
        })
    }).pipe(
      Effect.asVoid,
      Effect.catchTag("ConditionalCheckFailed", () =>
        revision === undefined ? Effect.void : Effect.fail(
          new RelocationConflict({ key: to.key, reason: "the target holds another event at the same seq" })
        ))
    )

  const liveKey = (location: Location, key: string, seq: number): AttributeMap => ({
    [Attr.partition]: { S: keyPartition(location, key) },
    [Attr.sort]: { B: SortKey.encode(key, seq) }
  })

  /** Deletes one item if it still holds the event with `revision` (any item when undefined). */
  const remove = (location: Location, key: AttributeMap, revision: string | undefined) =>
    dynamo.callConditional("DeleteItem", (client, abortSignal) =>
      client.send(
        new DeleteItemCommand({
          TableName: location.table,
          Key: key,
          ...(revision === undefined ? {} : {
            ConditionExpression: "#rev = :rev",
            ExpressionAttributeNames: { "#rev": Attr.revision },
            ExpressionAttributeValues: { ":rev": { S: revision } }
          })
        }),
        { abortSignal }
      )).pipe(Effect.asVoid, Effect.catchTag("ConditionalCheckFailed", () => Effect.void))

  /**
   * Removes what the source still holds of the events the target holds now (same seq and revision), the newest last.
   * Anything else at the source is a conflict: a write that did not go through the target, never removed.
   */
  const cleanUp = (from: KeyPlace, to: KeyPlace) =>
    Effect.gen(function*() {
      const { location } = from
      const chunks = ChunkArea.make(dynamo, location)
      for (let round = 0; round < maxAttempts; round++) {
        const source = yield* holdings(from)
        if (isEmpty(source)) return
        const target = yield* holdings(to)
        const known = new Map<number, string | undefined>()
        for (const stored of [...target.history, ...target.live, ...(target.grave ? [target.grave] : [])]) {
          known.set(stored.seq, revisionOf(stored))
        }
        const foreign = [...source.history, ...source.live, ...(source.grave ? [source.grave] : [])].find(
          (stored) => known.get(stored.seq) !== revisionOf(stored)
        )
        if (foreign !== undefined) {
          return yield* new RelocationConflict({
            key: to.key,
            reason: `the source holds event ${foreign.seq}, which the target does not: it was written to the old key`
          })
        }
        const dropChunks = (stored: StoredEvent) =>
          EventRecord.chunkCount(stored.item) === undefined
            ? Effect.void
            : Effect.asVoid(chunks.remove({ key: from.key, seq: stored.seq, revision: revisionOf(stored) ?? "" }))
        for (const stored of source.history) {
          const { [Attr.partition]: partition, [Attr.sort]: sort } = EventRecord.attributesOf(stored.item)
          yield* remove(location, { [Attr.partition]: partition!, [Attr.sort]: sort! }, revisionOf(stored))
        }
        if (source.freed !== undefined) {
          yield* remove(location, HistoryRecord.firstSeqKey(location, from.key), undefined)
        }
        const newest = newestOf(source)
        const older = source.live.filter((stored) => stored !== newest)
        if (source.grave !== undefined && source.grave !== newest) older.unshift(source.grave)
        for (const stored of [...older, ...(newest ? [newest] : [])]) {
          yield* remove(
            location,
            stored === source.grave
              ? GraveRecord.graveKey(location, from.key)
              : liveKey(location, from.key, stored.seq),
            revisionOf(stored)
          )
          yield* dropChunks(stored)
        }
      }
      return yield* new StorageFailure({
        operation: "relocate",
        reason: "the source kept changing while it was cleaned"
      })
    })

  const relocateOnce = (from: KeyPlace, to: KeyPlace, realKey: string | undefined) =>
    Effect.gen(function*() {
      const source = yield* holdings(from)
      const newest = newestOf(source)
      if (newest === undefined) {
        if (!isEmpty(source)) yield* cleanUp(from, to)
        return { _tag: "Absent" } as const
      }
      // The target's newest event is the transaction's doing (history copies alone are a move that stopped half way).
      if (newestOf(yield* holdings(to)) !== undefined) {
        yield* cleanUp(from, to)
        return { _tag: "AlreadyMoved" } as const
      }
      // Older events, each once (a history copy and a live event may both hold a seq for a moment).
      const older = new Map<number, StoredEvent>()
      for (const stored of [...source.history, ...(source.grave ? [source.grave] : []), ...source.live]) {
        if (stored.seq < newest.seq) older.set(stored.seq, stored)
      }
      // A buried tombstone's own history copy (history kept) goes along too: a later burial replaces the grave.
      const archivedNewest = newest === source.grave
        ? source.history.find((stored) => stored.seq === newest.seq && revisionOf(stored) === revisionOf(newest))
        : undefined
      const historyAt = keyArea(to.location, to.key, "history")
      for (const stored of [...older.values(), ...(archivedNewest === undefined ? [] : [archivedNewest])]) {
        const item = yield* encodeAt(from.location, to, realKey, stored)
        const ttl = EventRecord.attributesOf(stored.item)[Attr.ttl]
        yield* put(
          to,
          { ...item, [Attr.partition]: { S: historyAt }, ...(ttl === undefined ? {} : { [Attr.ttl]: ttl }) },
          revisionOf(stored) ?? ""
        )
      }
      if (source.freed !== undefined && !older.has(1)) {
        const ttl = Number(source.freed[Attr.ttl]?.N ?? "0")
        yield* put(to, HistoryRecord.freedMarker(to.location, to.key, ttl), undefined)
      }
      const moved = yield* encodeAt(from.location, to, realKey, newest)
      const revision = revisionOf(newest) ?? ""
      const buried = newest === source.grave
      const absent = {
        ConditionExpression: "attribute_not_exists(#sk)",
        ExpressionAttributeNames: { "#sk": Attr.sort }
      }
      const sameEvent = {
        ConditionExpression: "#rev = :rev",
        ExpressionAttributeNames: { "#rev": Attr.revision },
        ExpressionAttributeValues: { ":rev": { S: revision } }
      }
      const table = to.location.table
      const items: Array<TransactWriteItem> = [
        buried
          ? { Put: { TableName: table, Item: GraveRecord.fromTombstone(to.location, to.key, moved), ...absent } }
          : {
            Put: {
              TableName: table,
              Item: { ...moved, [Attr.moved]: { BOOL: true } },
              ...absent,
              ReturnValuesOnConditionCheckFailure: "ALL_OLD"
            }
          },
        buried
          ? { ConditionCheck: { TableName: table, Key: liveKey(to.location, to.key, newest.seq + 1), ...absent } }
          : { ConditionCheck: { TableName: table, Key: GraveRecord.graveKey(to.location, to.key), ...absent } },
        {
          ConditionCheck: {
            TableName: from.location.table,
            Key: buried
              ? GraveRecord.graveKey(from.location, from.key)
              : liveKey(from.location, from.key, newest.seq),
            ...sameEvent
          }
        },
        {
          ConditionCheck: {
            TableName: from.location.table,
            Key: liveKey(from.location, from.key, newest.seq + 1),
            ...absent
          }
        }
      ]
      const outcome = yield* Effect.result(
        dynamo.callTransaction("TransactWriteItems", (client, abortSignal) =>
          client.send(
            new TransactWriteItemsCommand({ TransactItems: items }),
            { abortSignal }
          ))
      )
      if (outcome._tag === "Failure") {
        const error = outcome.failure
        if (error._tag !== "TransactionCanceled") return yield* Effect.fail(error)
        // Another mover won (its copy has the same revision) or the source changed: either way, look again.
        return undefined
      }
      yield* cleanUp(from, to)
      return { _tag: "Moved", events: older.size + 1 } as const
    })

  /**
   * Moves every event of `from` to `to` (whose events then name `realKey`, the key callers know, when `to` is a
   * sealed form; when undefined, each event keeps the real key it had), keeping seqs and revisions. Idempotent: a move that stopped half way, or raced another, finishes.
   */
  const relocate = (
    from: KeyPlace,
    to: KeyPlace,
    realKey: string | undefined
  ): Effect.Effect<Relocated, RelocationError> =>
    Effect.gen(function*() {
      for (let attempt = 0; attempt < maxAttempts; attempt++) {
        const outcome = yield* relocateOnce(from, to, realKey)
        if (outcome !== undefined) return outcome
        // A transaction that met another mover's (or a writer's) in flight: let it finish before looking again.
        yield* Effect.sleep(`${10 * 2 ** attempt + Math.floor(Math.random() * 10)} millis`)
      }
      return yield* new RelocationConflict({ key: to.key, reason: "the source kept changing during the move" })
    }).pipe(Effect.withSpan("Relocation.relocate"))

  /** Whether a place holds any item of a key (live, history or grave): a source not fully moved yet. */
  const holds = (place: KeyPlace): Effect.Effect<boolean, Throttled | StorageFailure> =>
    Effect.map(holdings(place), (held) => !isEmpty(held))

  return { relocate, holds }
}

/** A relocation over one client (see {@link make}). */
export type Relocation = ReturnType<typeof make>
