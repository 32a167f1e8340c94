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
import { Effect, Schema, Stream } from "effect"
import type { DecryptionFailed, TableError } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import type { KeyringError } from "../../infra/crypto/Keyring.ts"
import type { EventTable } from "../../infra/EventTable.ts"
import { servingTable } from "../store/LayoutMigration.ts"
import * as NewestEvents from "../store/NewestEvents.ts"
import type { Projection } from "./Projection.ts"
import { covers, eventFor, readsValues } from "./Projection.ts"

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
export type ReplayError = TableError | KeyringError

/** The newest stored event of every key a projection covers, in key order, not decrypted. */
const newestCovered = (table: EventTable["Service"], projection: Projection<unknown>) =>
  NewestEvents.read(table, { prefixes: projection.prefixes }, { include: "graves" }).pipe(
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
) => Effect.Effect<RebuildOutcome, E | ReplayError, EventTable> = Effect.fn("Rebuild.replay")(function*<E>(
  projection: Projection<E>,
  options: RebuildOptions = {}
) {
  // The store's serving table when a store is in context: keys a layout migration has not moved yet are replayed too.
  const table = yield* servingTable
  const onProgress = options.onProgress
  const total = onProgress === undefined ? 0 : yield* Stream.runCount(newestCovered(table, projection))
  if (onProgress !== undefined) yield* onProgress(0, total)
  let keys = 0
  let shredded = 0
  const unreadable: Array<Unreadable> = []
  const skipUnreadable = (error: DecryptionFailed) =>
    Effect.sync(() => void unreadable.push({ key: error.key, seq: error.seq, reason: error.reason })).pipe(
      Effect.andThen(
        Effect.logWarning(`rebuild of ${projection.name}: cannot decrypt ${error.key} at seq ${error.seq}; left out`)
      ),
      Effect.as<Event | undefined>(undefined)
    )
  yield* newestCovered(table, projection).pipe(
    Stream.runForEach((stored) =>
      Effect.gen(function*() {
        // A projection that reads no values costs no chunk reads (see `Projection.readsValues`).
        const event = yield* table.decode(stored, { readChunks: readsValues(projection) }).pipe(
          Effect.map((decoded): Event | undefined => decoded),
          Effect.catchTag("Shredded", () =>
            Effect.sync((): Event | undefined => {
              shredded++
              return undefined
            })),
          Effect.catchTag("DecryptionFailed", skipUnreadable)
        )
        if (event !== undefined) yield* projection.apply(eventFor(projection, event))
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
) => Effect.Effect<RebuildOutcome, E | ReplayError, EventTable> = Effect.fn("Rebuild.rebuild")(function*<E>(
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
export const withReplay = <E>(
  projection: Projection<E>
): Effect.Effect<Projection<E | ReplayError>, never, EventTable> =>
  Effect.map(Effect.context<EventTable>(), (context) => ({
    ...projection,
    rebuild: Effect.asVoid(rebuild({ ...projection, rebuild: undefined })).pipe(Effect.provide(context))
  }))

/** No projection of that name (among `available`). */
export class UnknownProjection extends Schema.TaggedError<UnknownProjection>()("UnknownProjection", {
  projection: Schema.String,
  available: Schema.Array(Schema.String)
}) {
  override get message() {
    return `no projection named "${this.projection}"; available: ${
      this.available.length === 0 ? "none" : this.available.join(", ")
    }`
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
    : Effect.fail(
      new UnknownProjection({
        projection: name,
        available: [...alsoAvailable, ...projections.map((projection) => projection.name)]
      })
    )
}
