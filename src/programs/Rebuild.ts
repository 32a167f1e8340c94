/**
 * Rebuilds of projections from the event table: a projection's own
 * `rebuild` when it has one, otherwise a generic replay of every covered
 * key's newest event, tombstones included, in key order: from the live range,
 * or from the key's grave once compaction buried its tombstone, so deletions
 * reach the projection either way.
 *
 * Safe beside a live worker. A replay reads each key's newest event as the
 * table holds it when the scan reaches the key. Anything written after that
 * was written after the scan began, so it is a stream record beyond where the
 * worker's checkpoints stood when the scan began (a checkpoint never passes a
 * record that was not applied): the worker applies it, or already did. Every
 * event is thus seen by the replay, the worker, or both, and none is missed.
 * Both may hand the projection the same (key, seq), and the replay may hand
 * it a key's newest event after the worker applied a later one, which is why
 * `apply` must be idempotent per (key, seq) and ignore events at or below the
 * seq it holds for the key (see `Projection.apply`).
 */
import { QueryCommand } from "@aws-sdk/client-dynamodb"
import { Effect, Option, Schema, Stream } from "effect"
import { StorageFailure } from "../domain/Errors.ts"
import type { DecryptionFailed, Throttled } from "../domain/Errors.ts"
import type { Event } from "../domain/Event.ts"
import * as Key from "../domain/Key.ts"
import * as SortKey from "../domain/SortKey.ts"
import type { KeyringError } from "../infra/crypto/Keyring.ts"
import { Dynamo } from "../infra/Dynamo.ts"
import type { AttributeMap } from "../infra/Dynamo.ts"
import { Attr } from "../infra/EventRecord.ts"
import type { Location } from "../infra/EventRecord.ts"
import { EventTable } from "../infra/EventTable.ts"
import type { SortKeyRange, StoredItem } from "../infra/EventTable.ts"
import * as GraveRecord from "../infra/GraveRecord.ts"
import type { Projection } from "./Projection.ts"
import { covers } from "./Projection.ts"

/** Reports how many keys were replayed out of how many were counted when the rebuild began. */
export type OnProgress = (done: number, total: number) => Effect.Effect<void>

/** How to rebuild. */
export interface RebuildOptions {
  /**
   * Called after each replayed key. Asking for progress costs a counting pass over the keys first;
   * keys created during the rebuild may make `done` pass the count, and `total` then follows `done`.
   */
  readonly onProgress?: OnProgress | undefined
}

/** A covered key whose newest event could not be decrypted (tampered, moved, or under a lost key); it was left out. */
export interface Unreadable {
  readonly key: string
  readonly seq: number
  readonly reason: string
}

/** What a rebuild did. */
export type RebuildOutcome =
  /** The projection's own `rebuild` ran. */
  | { readonly _tag: "Custom" }
  /**
   * Every covered key's newest event was applied, except `shredded` ones (their value is erased for good;
   * the worker skips them too) and `unreadable` ones.
   */
  | {
    readonly _tag: "Replayed"
    readonly keys: number
    readonly shredded: number
    readonly unreadable: ReadonlyArray<Unreadable>
  }

/** Failures of the replay itself, besides the projection's own. */
export type ReplayError = Throttled | StorageFailure | KeyringError

/**
 * The sort-key ranges holding exactly the keys under `prefixes` (everything when empty), in key order and
 * disjoint: a prefix inside another one is dropped, so no key is replayed twice.
 */
export const coveredRanges = (prefixes: ReadonlyArray<string>): ReadonlyArray<SortKeyRange> => {
  if (prefixes.length === 0 || prefixes.includes("")) {
    return [{ lower: new Uint8Array([0]), upper: SortKey.prefixUpperBound(""), descending: false }]
  }
  const sorted = [...new Set(prefixes)].sort(Key.compare)
  const outermost = sorted.filter((prefix, i) => !sorted.slice(0, i).some((other) => prefix.startsWith(other)))
  // The keys under a prefix are the sort keys from its bytes up to its bytes followed by 0xFF (never in UTF-8).
  return outermost.map((prefix) => ({ lower: Key.toBytes(prefix), upper: SortKey.prefixUpperBound(prefix), descending: false }))
}

/** The tombstone a grave holds, as it stood in the live range; a grave holding anything else is corrupt. */
const buriedTombstone = (location: Location, grave: AttributeMap): Effect.Effect<StoredItem, StorageFailure> => {
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

/** The buried tombstones of the graves filed from `lower` to `upper` (inclusive sort keys `key ‖ 0x00`), in key order. */
const gravesBetween = (
  dynamo: Dynamo["Service"],
  location: Location,
  lower: Uint8Array,
  upper: Uint8Array
): Stream.Stream<StoredItem, Throttled | StorageFailure> =>
  Buffer.compare(lower, upper) > 0 ? Stream.empty : Stream.paginate(undefined as AttributeMap | undefined, (startKey) =>
    dynamo.call("Query", (client, abortSignal) =>
      client.send(
        new QueryCommand({
          TableName: location.table,
          KeyConditionExpression: "#pk = :pk AND #sk BETWEEN :lower AND :upper",
          ExpressionAttributeNames: { "#pk": Attr.partition, "#sk": Attr.sort },
          ExpressionAttributeValues: { ":pk": { S: GraveRecord.gravePartition(location) }, ":lower": { B: lower }, ":upper": { B: upper } },
          ConsistentRead: true,
          ExclusiveStartKey: startKey
        }),
        { abortSignal }
      )
    ).pipe(
      Effect.flatMap((output) =>
        Effect.map(
          Effect.forEach(output.Items ?? [], (grave) => buriedTombstone(location, grave)),
          (items) => [items, Option.fromNullishOr(output.LastEvaluatedKey)] as const
        )
      )
    ))

/** Merges a key-ordered array of live newest events with key-ordered buried tombstones; for a key in both, the higher seq. */
const mergeByKey = <E, R>(live: ReadonlyArray<StoredItem>, buried: Stream.Stream<StoredItem, E, R>): Stream.Stream<StoredItem, E, R> =>
  Stream.mapAccum(buried, () => 0, (i, grave): readonly [number, ReadonlyArray<StoredItem>] => {
    const out: Array<StoredItem> = []
    while (i < live.length && Key.compare(live[i]!.key, grave.key) < 0) out.push(live[i++]!)
    if (i < live.length && live[i]!.key === grave.key) out.push(live[i]!.seq >= grave.seq ? live[i++]! : (i++, grave))
    else out.push(grave)
    return [i, out]
  }, { onHalt: (i) => live.slice(i) })

/**
 * The newest event of every key of a range, in key order, tombstones included: from the live range, or for a
 * deleted key whose tombstone was buried (moved out of the live range by compaction), from its grave.
 *
 * A burial moves a tombstone from the live range to its grave in one transaction, so a key is in one or the
 * other; reading the graves of each stretch of keys only after the live page covering it was read means a
 * key buried between the two reads is found in its grave rather than missed in both.
 */
export const newestEvents = (
  table: EventTable["Service"],
  dynamo: Dynamo["Service"],
  range: SortKeyRange
): Stream.Stream<StoredItem, Throttled | StorageFailure> =>
  Stream.suspend(() => {
    let previous: string | undefined
    let gravesFrom = range.lower
    const live = table.scan({ ...range, descending: false }).pipe(
      Stream.mapArray((page) => [page] as const),
      Stream.flatMap((page) => {
        // Ascending, a key's newest event comes first; its older ones may run on into the next page.
        const newest = page.filter((stored) => stored.key !== previous && (previous = stored.key, true))
        const upTo = SortKey.keyPrefix(page[page.length - 1]!.key)
        const from = gravesFrom
        gravesFrom = new Uint8Array([...upTo, 0])
        return mergeByKey(newest, gravesBetween(dynamo, table.location, from, upTo))
      })
    )
    return Stream.concat(live, Stream.suspend(() => gravesBetween(dynamo, table.location, gravesFrom, range.upper)))
  })

/** The newest stored event of every key a projection covers, in key order, not decrypted. */
const newestCovered = (table: EventTable["Service"], dynamo: Dynamo["Service"], projection: Projection<unknown>) =>
  Stream.fromIterable(coveredRanges(projection.prefixes)).pipe(
    Stream.flatMap((range) => newestEvents(table, dynamo, range)),
    Stream.filter((stored) => covers(projection, stored.key))
  )

/**
 * Replays every covered key's newest event (tombstones included, so deletions propagate) through
 * `projection.apply`, in key order, with no reset and ignoring any custom `rebuild`. A value that was
 * shredded is skipped, as the worker skips it; one that cannot be decrypted is skipped and reported.
 */
export const replay: <E>(
  projection: Projection<E>,
  options?: RebuildOptions
) => Effect.Effect<RebuildOutcome, E | ReplayError, EventTable | Dynamo> = Effect.fn("Rebuild.replay")(function*<E>(
  projection: Projection<E>,
  options: RebuildOptions = {}
) {
  const table = yield* EventTable
  const dynamo = yield* Dynamo
  const onProgress = options.onProgress
  const total = onProgress === undefined ? 0 : yield* Stream.runCount(newestCovered(table, dynamo, projection))
  if (onProgress !== undefined) yield* onProgress(0, total)
  let keys = 0
  let shredded = 0
  const unreadable: Array<Unreadable> = []
  const skipUnreadable = (error: DecryptionFailed) =>
    Effect.sync(() => void unreadable.push({ key: error.key, seq: error.seq, reason: error.reason })).pipe(
      Effect.andThen(Effect.logWarning(`rebuild of ${projection.name}: cannot decrypt ${error.key} at seq ${error.seq}; left out`)),
      Effect.as<Event | undefined>(undefined)
    )
  yield* newestCovered(table, dynamo, projection).pipe(
    Stream.runForEach((stored) =>
      Effect.gen(function*() {
        const event = yield* table.decode(stored).pipe(
          Effect.map((decoded): Event | undefined => decoded),
          Effect.catchTag("Shredded", () => Effect.sync((): Event | undefined => (shredded++, undefined))),
          Effect.catchTag("DecryptionFailed", skipUnreadable)
        )
        if (event !== undefined) yield* projection.apply(event)
        keys++
        if (onProgress !== undefined) yield* onProgress(keys, Math.max(total, keys))
      })
    )
  )
  return { _tag: "Replayed", keys, shredded, unreadable } satisfies RebuildOutcome
})

/**
 * Rebuilds any projection from the event table: its own `rebuild` if it has one; otherwise its `reset`
 * (if any), then a {@link replay} of every covered key's newest event. Safe beside a live worker (see the
 * module's documentation); `onProgress` counts keys and is called by replays only.
 */
export const rebuild: <E>(
  projection: Projection<E>,
  options?: RebuildOptions
) => Effect.Effect<RebuildOutcome, E | ReplayError, EventTable | Dynamo> = Effect.fn("Rebuild.rebuild")(function*<E>(
  projection: Projection<E>,
  options: RebuildOptions = {}
) {
  yield* Effect.annotateCurrentSpan("projection", projection.name)
  if (projection.rebuild !== undefined) {
    yield* projection.rebuild
    return { _tag: "Custom" } satisfies RebuildOutcome
  }
  if (projection.reset !== undefined) yield* projection.reset
  return yield* replay(projection, options)
})

/**
 * The projection with a `rebuild` that resets and replays it generically, so a worker rebuilds it on start,
 * after a trimmed shard and after a takeover, as it does projections with a rebuild of their own. A replay
 * reads every covered key, so this suits projections over a modest share of the table.
 */
export const withReplay = <E>(projection: Projection<E>): Effect.Effect<Projection<E | ReplayError>, never, EventTable | Dynamo> =>
  Effect.map(Effect.context<EventTable | Dynamo>(), (context) => ({
    ...projection,
    rebuild: Effect.asVoid(rebuild({ ...projection, rebuild: undefined })).pipe(Effect.provide(context))
  }))

/** No projection of that name (among `available`). */
export class UnknownProjection extends Schema.TaggedError<UnknownProjection>()("UnknownProjection", {
  projection: Schema.String,
  available: Schema.Array(Schema.String)
}) {
  override get message() {
    return `no projection named "${this.projection}"; available: ${this.available.length === 0 ? "none" : this.available.join(", ")}`
  }
}

/** The projection named `name`, or `UnknownProjection` listing the names there are. */
export const byName = <E>(
  projections: ReadonlyArray<Projection<E>>,
  name: string,
  alsoAvailable: ReadonlyArray<string> = []
): Effect.Effect<Projection<E>, UnknownProjection> => {
  const found = projections.find((projection) => projection.name === name)
  return found !== undefined
    ? Effect.succeed(found)
    : Effect.fail(new UnknownProjection({ projection: name, available: [...alsoAvailable, ...projections.map((projection) => projection.name)] }))
}
