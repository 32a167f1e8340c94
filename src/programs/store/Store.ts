/**
 * The store: Teleport's key/value backend contract as an Effect service, on an
 * event log in DynamoDB. Writes go through per-key actors; reads are
 * consistent queries; bad input fails before any I/O.
 */
import { Clock, Context, Effect, Layer, Option, Stream } from "effect"
import type { ConditionalAction } from "../../domain/AtomicWrite.ts"
import type { Command } from "../../domain/Command.ts"
import { keyOf } from "../../domain/Command.ts"
import type { CommandError } from "../../domain/Decide.ts"
import { NotFound, Shredded, StorageFailure } from "../../domain/Errors.ts"
import type { SealedRangeTooLarge } from "../../domain/Errors.ts"
import type {
  AlreadyExists,
  BadParameter,
  CompareFailed,
  ConditionFailed,
  HistoryGap,
  IncorrectRevision,
  Throttled,
  ValueTooLarge
} from "../../domain/Errors.ts"
import { isDueForExpiry, liveItem, presentRevision, reveal } from "../../domain/Event.ts"
import type { Event } from "../../domain/Event.ts"
import type { Item, ItemInput, Lease } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import type { LayoutLease } from "../../domain/LayoutLease.ts"
import type { Layout } from "../../domain/Partitioning.ts"
import * as SealedKeys from "../../domain/SealedKeys.ts"
import type { SealedPrefix } from "../../domain/SealedKeys.ts"
import type { ConfigInvalid } from "../../infra/config/ConfigInvalid.ts"
import { DataKeys } from "../../infra/crypto/DataKeys.ts"
import type { Keyring, KeyringError } from "../../infra/crypto/Keyring.ts"
import * as KeySealer from "../../infra/crypto/KeySealer.ts"
import { Dynamo } from "../../infra/Dynamo.ts"
import { EventTable } from "../../infra/EventTable.ts"
import type { ReadError } from "../../infra/EventTable.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import { hotSpan } from "../../infra/HotSpan.ts"
import * as Relocation from "../../infra/Relocation.ts"
import type { StreamsApi } from "../../infra/streams/StreamsApi.ts"
import * as AtomicWriter from "./AtomicWriter.ts"
import { defaultAtomicWriteOptions } from "./AtomicWriter.ts"
import type { AtomicWriteOptions } from "./AtomicWriter.ts"
import * as ExpiryRecording from "./ExpiryRecording.ts"
import * as History from "./History.ts"
import type { PastPoint } from "./History.ts"
import type { ActorOptions, WriteError } from "./KeyActors.ts"
import { defaultActorOptions, KeyActors } from "./KeyActors.ts"
import * as KeySealing from "./KeySealing.ts"
import { LayoutMigration } from "./LayoutMigration.ts"
import * as NewestEvents from "./NewestEvents.ts"
import * as ReadCoalescing from "./ReadCoalescing.ts"
import * as SealedFallback from "./SealedFallback.ts"
import {
  checkAtomicWrite,
  checkKey,
  checkLimit,
  checkWatchOptions,
  commandOperations,
  guardKey,
  limited,
  unlimited
} from "./StoreInput.ts"
import type { CommandRunner } from "./StoreInput.ts"
import * as StoreLayout from "./StoreLayout.ts"
import { Watches } from "./Watch.ts"
import type { WatchesOptions } from "./Watch.ts"
import type { WatchError, WatchEvent, WatchOptions } from "./Watch.ts"
import { WriteAcks } from "./WriteAcks.ts"

export type { AtomicWriteOptions } from "./AtomicWriter.ts"
export type { PastPoint } from "./History.ts"
export type { ActorOptions, WriteError } from "./KeyActors.ts"
export type { WatchError, WatchEvent, WatchOptions, WatchPosition } from "./Watch.ts"
export { WatcherOverflow, WatchGap } from "./Watch.ts"

/** Options of `getRange`. */
export interface RangeOptions {
  /** At most this many items (0: no limit, as Teleport's `NoLimit`); expired and deleted items do not count. */
  readonly limit?: number | undefined
}

/** Options of `items`: an inclusive key range, either direction. */
export interface ItemsOptions extends RangeOptions {
  readonly start: string
  readonly end: string
  readonly descending?: boolean | undefined
}

/** Failures every write can have besides its own. */
export type WriteFailure = BadParameter | ValueTooLarge | WriteError

/** Failures every read can have (`SealedRangeTooLarge` only from ranges that touch a sealed prefix). */
export type ReadFailure = BadParameter | ReadError | SealedRangeTooLarge

/** The store's operations. */
export interface StoreService {
  /** Stores an item if no live item has its key. */
  readonly create: (item: ItemInput) => Effect.Effect<Lease, AlreadyExists | WriteFailure>
  /** Stores an item, replacing whatever is there. */
  readonly put: (item: ItemInput) => Effect.Effect<Lease, WriteFailure>
  /** Replaces a live item. */
  readonly update: (item: ItemInput) => Effect.Effect<Lease, NotFound | WriteFailure>
  /** Replaces a live item whose value is `expected.value`; the keys must be equal. */
  readonly compareAndSwap: (
    expected: Pick<ItemInput, "key" | "value">,
    replaceWith: ItemInput
  ) => Effect.Effect<Lease, CompareFailed | WriteFailure>
  /** Replaces a live item whose revision is `item.revision`. */
  readonly conditionalUpdate: (item: Item) => Effect.Effect<Lease, IncorrectRevision | WriteFailure>
  /** Deletes a live item whose revision is `revision`. */
  readonly conditionalDelete: (key: string, revision: string) => Effect.Effect<void, IncorrectRevision | WriteFailure>
  /** The live item of a key; an expiry it meets is recorded as a courtesy, so it never fails for want of writing. */
  readonly get: (key: string) => Effect.Effect<Item, NotFound | ReadFailure>
  /** The live items with `start <= key <= end`, ascending. */
  readonly getRange: (
    start: string,
    end: string,
    options?: RangeOptions
  ) => Effect.Effect<ReadonlyArray<Item>, ReadFailure>
  /** The live items of a range as a lazily paged stream, in either direction. */
  readonly items: (options: ItemsOptions) => Stream.Stream<Item, ReadFailure>
  /** Deletes a live item. */
  readonly delete: (key: string) => Effect.Effect<void, NotFound | WriteFailure>
  /** Deletes every live item with `start <= key <= end`; returns how many it deleted. */
  readonly deleteRange: (start: string, end: string) => Effect.Effect<number, WriteFailure | SealedRangeTooLarge>
  /** Gives a live item a new expiry (epoch ms, or none); the lease's revision, when not empty, must be live. */
  readonly keepAlive: (
    lease: Lease,
    expires: number | undefined
  ) => Effect.Effect<Lease, NotFound | IncorrectRevision | WriteFailure>
  /** Applies every action or none; returns the revision shared by every written event. */
  readonly atomicWrite: (
    actions: ReadonlyArray<ConditionalAction>
  ) => Effect.Effect<string, ConditionFailed | WriteFailure>
  /** Re-wraps every data key under another keyring (events are not touched); returns how many. */
  readonly rewrap: (keyring: Keyring["Service"]) => Effect.Effect<number, KeyringError | Throttled | StorageFailure>
  /**
   * Destroys the data keys of every shred scope that starts with `scopePrefix`
   * (see `DataKeyPolicy.scopeOf`): their values read as `Shredded` from then on,
   * while the events stay. Returns how many data keys were destroyed.
   */
  readonly shred: (
    scopePrefix: string
  ) => Effect.Effect<number, BadParameter | KeyringError | Throttled | StorageFailure>
  /**
   * A live feed of changes under some prefixes: `Init` first, then `Put`,
   * `Delete` and `Expire` in per-key order; `WatcherOverflow` if the consumer
   * falls behind its buffer. Ends when the stream's scope or the store closes.
   */
  readonly watch: (options?: WatchOptions) => Stream.Stream<WatchEvent, WatchError>
  /**
   * Every event of a key still kept (history area and live range), decrypted, oldest first. `HistoryGap` if an
   * event between two kept ones was removed from the table (compaction only removes the oldest).
   */
  readonly history: (key: string) => Stream.Stream<Event, ReadFailure | HistoryGap>
  /** The item a key held right after a revision was written, or at a moment (epoch ms); `HistoryGap` as above. */
  readonly getAt: (key: string, at: PastPoint) => Effect.Effect<Item, NotFound | ReadFailure | HistoryGap>
}

/** Tuning of a store instance. */
export interface StoreOptions {
  readonly actors: ActorOptions
  readonly atomicWrite: AtomicWriteOptions
  /** Concurrent deletes of `deleteRange`. */
  readonly deleteConcurrency: number
  /** Where watches read the stream (through the worker's relay, or in this process when absent). */
  readonly watches?: WatchesOptions | undefined
  /**
   * Prefixes whose next path segment (or whole rest) is stored as a keyed MAC, the real key encrypted beside the
   * value (see `SealedKeys`). Checked when the layer is built: an invalid list is a defect naming the bad entry.
   */
  readonly sealed?: ReadonlyArray<SealedPrefix> | undefined
  /** The most live keys of one sealed prefix a range read sorts in memory (default 10,000). */
  readonly sealedRangeLimit?: number | undefined
  /**
   * Prefixes of stored keys with partitions of their own (see `Partitioning`). The event table routes by its
   * location's layout; given here too, it must be the same (`ConfigInvalid` otherwise). Either way the store opens
   * only if the namespace's layout record agrees (see `LayoutRecord`).
   */
  readonly partitions?: Layout | undefined
  /**
   * How long the store serves on one confirmation of its layout by the record, re-read in the background (see
   * `LayoutLease`, `storage.layout_lease`; `LayoutLease.defaultLease` by default); the same in every process.
   */
  readonly layoutLease?: LayoutLease | undefined
}

/** Store tuning that suits most applications. */
export const defaultStoreOptions: StoreOptions = {
  actors: defaultActorOptions,
  atomicWrite: defaultAtomicWriteOptions,
  deleteConcurrency: 16
}

/** The store service. */
export class Store extends Context.Service<Store, StoreService>()("dynastate/Store") {
  /**
   * The store over an event table (both layouts' while one changes: `StoreLayout.layer`), with its actors, acks,
   * watches and history area (all but the actors also provided, for the projection worker and views to share), and
   * the layout it serves through (`LayoutMigration`: the event table readers of the whole namespace read).
   */
  static readonly layer = (
    options: StoreOptions = defaultStoreOptions
  ): Layer.Layer<
    Store | WriteAcks | Watches | HistoryArea | SealedFallback.MovedKeys | LayoutMigration,
    ConfigInvalid | Throttled | StorageFailure,
    EventTable | DataKeys | Dynamo | StreamsApi
  > =>
    Layer.effect(Store, make(options)).pipe(
      Layer.merge(SealedFallback.MovedKeys.layer(options.sealed)),
      // The layout the store serves through, for readers of the whole namespace (see `LayoutMigration.servingTable`).
      Layer.merge(Layer.effect(LayoutMigration, Effect.service(LayoutMigration))),
      Layer.provide(KeyActors.layer(options.actors)),
      Layer.provide(StoreLayout.layer(options)),
      Layer.provideMerge(Watches.layerWith(options.watches ?? {})),
      // Below the watches too: they deliver this instance's own writes at acknowledgement.
      Layer.provideMerge(WriteAcks.layer),
      Layer.provideMerge(HistoryArea.layer)
    )
}

const make = (options: StoreOptions) =>
  Effect.gen(function*() {
    const table = yield* EventTable
    const actors = yield* KeyActors
    const dataKeys = yield* DataKeys
    const watches = yield* Watches
    const area = yield* HistoryArea
    const acks = yield* WriteAcks
    const services = Effect.provideService(EventTable, table)
    // A store configured without sealed prefixes pays nothing for them: every path below checks `sealer` first.
    const sealer = options.sealed === undefined || options.sealed.length === 0
      ? undefined
      : yield* Effect.orDie(KeySealer.make(dataKeys, options.sealed))
    // Sealed prefixes still holding keys in clear (a migration under way, see `SealMigration`): their reads fall back
    // to the clear keys and their writes move a key before appending. Decided at open: a prefix never goes back.
    const migrating = sealer === undefined ? [] : yield* Effect.orDie(SealedFallback.migrating(table, sealer.prefixes))
    for (const { prefix } of migrating) {
      yield* Effect.logWarning(
        `the sealed prefix ${prefix} holds keys written in clear: serving it in migrating mode (reads fall back to ` +
          "the clear keys, writes seal a key first) until `dynastate seal-migrate` has sealed them all"
      )
    }
    const isMigrating = (key: string, stored: string) =>
      stored !== key && SealedKeys.coveringPrefix(migrating, key) !== undefined
    // Writes move keys: not before every process without the prefix has lost its lease (see `SealedFallback.fence`).
    const moves = yield* SealedFallback.fence(table.location, migrating, options.layoutLease)
    const resolve = SealedFallback.makeResolver(Relocation.make(yield* Dynamo, dataKeys), moves)
    const here = (key: string) => ({ location: table.location, key })
    const resolved = (key: string, stored: string) =>
      isMigrating(key, stored)
        ? Effect.catchTag(
          resolve(table.latestState(stored), here(key), here(stored), key),
          "RelocationConflict",
          (error) => Effect.fail(new StorageFailure({ operation: "relocate", reason: error.message }))
        )
        : Effect.void
    const sealedRangeLimit = options.sealedRangeLimit ?? KeySealing.defaultSealedRangeLimit
    const storedKey = (key: string, field?: string) =>
      sealer === undefined ? Effect.succeed(key) : sealer.seal(key, field)

    const execute = <E extends CommandError>(command: Command) =>
      actors.execute(command) as Effect.Effect<Lease, E | WriteError>
    const run: CommandRunner<WriteError | KeySealer.SealError> = <E extends CommandError>(command: Command) =>
      sealer === undefined ? execute<E>(command) : Effect.gen(function*() {
        const key = keyOf(command)
        const sealed = yield* KeySealing.sealCommand(sealer, command)
        yield* resolved(key, sealed.stored)
        const lease = yield* execute<E>(sealed.command).pipe(
          Effect.mapError((error) => KeySealing.renameKey(error, sealed.stored, key))
        )
        return { ...lease, key }
      })

    // Concurrent gets of a hot key share reads (each from a read sent after it was invoked).
    const latestState = yield* ReadCoalescing.make(table.latestState)

    /** What a read of the stored key `stored` found, as the answer to a get of `key` at `now`. */
    const answer = (
      key: string,
      stored: string,
      latest: Event | undefined,
      now: number
    ): Effect.Effect<Item, NotFound | ReadFailure> => {
      const item = liveItem(latest, now)
      if (item) {
        if (latest) actors.observe(latest)
        return Effect.succeed(item)
      }
      if (latest?.shredded && presentRevision(latest, now) !== undefined) {
        return Effect.fail(new Shredded({ key, seq: latest.seq, scope: latest.shredded.scope }))
      }
      const notFound = Effect.fail(new NotFound({ key }))
      // The answer is what was read; recording the expiry is a courtesy the worker also does (see ExpiryRecording).
      return isDueForExpiry(latest, now) && latest?.key === stored
        ? Effect.andThen(ExpiryRecording.bestEffort(key, actors.expire(stored)), notFound)
        : notFound
    }

    // The clock is read after the read, in place: what was read is judged at a moment it was still the newest.
    const answerNow = (key: string, stored: string) => (latest: Option.Option<Event>) =>
      Clock.clockWith((clock) => answer(key, stored, Option.getOrUndefined(latest), clock.currentTimeMillisUnsafe()))

    const sealedGet = Effect.fnUntraced(function*(key: string) {
      yield* checkKey(key)
      const stored = yield* sealer!.seal(key)
      const read = isMigrating(key, stored)
        ? SealedFallback.latest(table.latestState(stored), table.latestState(key))
        : latestState(stored)
      return yield* Effect.flatMap(
        stored === key ? read : Effect.mapError(read, (error) => KeySealing.renameKey(error, stored, key)),
        answerNow(key, stored)
      )
    })

    const getSpan = hotSpan("Store.get")
    // Unsealed keys, the hot path, take no detour: no generator, sealing step or renaming of errors. Not `Effect.fn`:
    // the stack trace it takes per call cost more than the rest of a cached get's work.
    const get = (key: string) =>
      getSpan(
        sealer !== undefined ? sealedGet(key) : guardKey(key, Effect.flatMap(latestState(key), answerNow(key, key)))
      )

    /** The live items of a range of stored keys, under the keys their callers know them by. */
    const storedItems = (
      options: ItemsOptions,
      readAhead = false,
      handOn: typeof NewestEvents.handOnLive = NewestEvents.handOnLive
    ): Stream.Stream<Item, ReadFailure> =>
      Stream.unwrap(
        Effect.gen(function*() {
          yield* checkKey(options.start, "start")
          yield* checkKey(options.end, "end")
          yield* checkLimit(options.limit)
          // No key lies in a reversed range; DynamoDB would reject the query, so answer without asking.
          if (Key.compare(options.start, options.end) > 0) return Stream.empty
          // Each page is judged when it is read and decoded as a whole, and each item judged again when it is handed
          // on (by `handOnLive`, the clock read per item as the stream is pulled): a slow consumer never gets an item
          // that expired while it was busy. A reader taking every item at once judges each page as it passes instead.
          const stream = NewestEvents.read(table, options, {
            include: "live",
            descending: options.descending,
            readAhead
          }).pipe(
            NewestEvents.decodePages(table),
            handOn
          )
          return limited(stream, options.limit)
        })
      )

    const items = (options: ItemsOptions): Stream.Stream<Item, ReadFailure> =>
      sealer === undefined ? storedItems(options) : Stream.unwrap(
        Effect.gen(function*() {
          yield* checkKey(options.start, "start")
          yield* checkKey(options.end, "end")
          yield* checkLimit(options.limit)
          if (Key.compare(options.start, options.end) > 0) return Stream.empty
          const moving = SealedKeys.touchedBy(migrating, options.start, options.end)
          if (moving.length === 0) return KeySealing.sealedItems(sealer, options, sealedRangeLimit, storedItems)
          return SealedFallback.migratingRange(table, sealer, moving, options, sealedRangeLimit, storedItems)
        })
      )

    const deleteRange = Effect.fn("Store.deleteRange")(function*(start: string, end: string) {
      yield* checkKey(start, "start")
      yield* checkKey(end, "end")
      if (Key.compare(start, end) > 0) return 0
      const now = yield* Clock.currentTimeMillis
      // A range reaching into a sealed prefix learns its keys as a range read does (real keys, sorted, bounded).
      const keys = sealer !== undefined && SealedKeys.touchedBy(sealer.prefixes, start, end).length > 0
        ? Stream.map(items({ start, end }), (item) => item.key)
        : Stream.map(
          // Every page is read anyway: the next is read while the last one's keys are being deleted.
          NewestEvents.read(table, { start, end }, { include: "live", at: now, readAhead: true }),
          (stored) => stored.key
        )
      return yield* keys.pipe(
        Stream.mapEffect(
          (key) =>
            run<NotFound>({ _tag: "Delete", key }).pipe(
              Effect.as(1),
              // Deleted or expired by someone else meanwhile: it is gone either way.
              Effect.catchTag("NotFound", () => Effect.succeed(0))
            ),
          { concurrency: options.deleteConcurrency }
        ),
        Stream.runFold(() => 0, (total, deleted) => total + deleted)
      )
    })

    const atomicWrite = (actions: ReadonlyArray<ConditionalAction>) =>
      Effect.gen(function*() {
        if (sealer === undefined) return yield* AtomicWriter.atomicWrite(actions, options.atomicWrite)
        // Checked as the caller wrote them, so a bad key is named as it was given.
        yield* checkAtomicWrite(table.location, actions)
        const realKeys = new Map<string, string>()
        const sealed = yield* Effect.forEach(actions, (entry, index) =>
          Effect.gen(function*() {
            const stored = yield* sealer.seal(entry.key, `actions[${index}].key`)
            yield* resolved(entry.key, stored)
            if (stored === entry.key) return entry
            realKeys.set(stored, entry.key)
            return { ...entry, key: stored }
          }))
        return yield* AtomicWriter.atomicWrite(sealed, options.atomicWrite, realKeys).pipe(
          Effect.mapError((error) => {
            const stored = "key" in error ? error.key : undefined
            const real = stored === undefined ? undefined : realKeys.get(stored)
            return stored === undefined || real === undefined ? error : KeySealing.renameKey(error, stored, real)
          })
        )
      }).pipe(services, Effect.provideService(KeyActors, actors), Effect.provideService(WriteAcks, acks))

    const history = (key: string) =>
      Stream.unwrap(Effect.gen(function*() {
        yield* checkKey(key)
        const stored = yield* storedKey(key)
        return History.events(table, area, stored, isMigrating(key, stored) ? key : undefined).pipe(
          Stream.map(reveal),
          Stream.mapError((error) => KeySealing.renameKey(error, stored, key))
        )
      }))

    const getAt = (key: string, at: PastPoint) =>
      Effect.gen(function*() {
        yield* checkKey(key)
        const stored = yield* storedKey(key)
        return yield* History.itemAt(table, area, stored, at, isMigrating(key, stored) ? key : undefined).pipe(
          Effect.mapError((error) => KeySealing.renameKey(error, stored, key))
        )
      })

    const watch = (watchOptions: WatchOptions = {}) =>
      sealer === undefined ? watches.watch(watchOptions) : Stream.unwrap(
        Effect.gen(function*() {
          yield* checkWatchOptions(watchOptions)
          return watches.watch(watchOptions, yield* KeySealing.storedPrefixes(sealer, watchOptions.prefixes))
        })
      )

    return Store.of({
      ...commandOperations(run),
      get,
      getRange: (start, end, rangeOptions) => {
        const options = { start, end, limit: rangeOptions?.limit }
        // Without a limit every page is read anyway: the next is read while the last is decoded.
        // Collected at once: each page's items judged as it passes (see `NewestEvents.liveByPage`).
        return Stream.runCollect(
          sealer === undefined
            ? storedItems(options, unlimited(options.limit), NewestEvents.liveByPage)
            : items(options)
        )
      },
      items,
      deleteRange,
      atomicWrite,
      rewrap: dataKeys.rewrap,
      shred: (scopePrefix) =>
        sealer === undefined
          ? dataKeys.shred(scopePrefix)
          : Effect.flatMap(KeySealing.storedScope(sealer, scopePrefix), (stored) =>
            // While the prefix migrates, keys not moved yet have their scopes drawn from their clear keys.
            isMigrating(scopePrefix, stored)
              ? Effect.zipWith(dataKeys.shred(stored), dataKeys.shred(scopePrefix), (a, b) => a + b)
              : dataKeys.shred(stored)),
      watch,
      history,
      getAt
    })
  })
