/**
 * Reads and writes of a sealed prefix that still holds keys written in clear, while a migration seals them in place
 * (see `SealMigration`): each key is at its clear stored key until it is moved, at its sealed one after, and at both
 * (the same events) for a moment while it moves. Reads look at the sealed key first and fall back to the clear one;
 * writes move the key first (see `Relocation`), so nothing is ever appended to a clear key.
 */
import { Clock, Context, Effect, Layer, Option, Stream } from "effect"
import { SealedRangeTooLarge } from "../../domain/Errors.ts"
import type { StorageFailure, TableError, Throttled } from "../../domain/Errors.ts"
import { callerKey, liveItem } from "../../domain/Event.ts"
import type { Event } from "../../domain/Event.ts"
import type { Item } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import * as LayoutLease from "../../domain/LayoutLease.ts"
import * as SealedKeys from "../../domain/SealedKeys.ts"
import type { SealedPrefix } from "../../domain/SealedKeys.ts"
import * as SortKey from "../../domain/SortKey.ts"
import type { ConfigInvalid } from "../../infra/config/ConfigInvalid.ts"
import { DataKeys } from "../../infra/crypto/DataKeys.ts"
import * as KeySealer from "../../infra/crypto/KeySealer.ts"
import type { Dynamo } from "../../infra/Dynamo.ts"
import type { Location } from "../../infra/EventRecord.ts"
import { EventTable } from "../../infra/EventTable.ts"
import type { ReadError, SortKeyRange } from "../../infra/EventTable.ts"
import * as LayoutRecord from "../../infra/LayoutRecord.ts"
import type { KeyPlace, Relocation, RelocationError } from "../../infra/Relocation.ts"
import * as KeySealing from "./KeySealing.ts"
import * as LayoutFence from "./LayoutFence.ts"
import { LayoutMigration } from "./LayoutMigration.ts"
import * as NewestEvents from "./NewestEvents.ts"
import { limited } from "./StoreInput.ts"

/** The sort keys of a sealed prefix's keys stored in clear (a sealed part starts with U+0001, which sorts first). */
export const clearRange = (prefix: string): SortKeyRange => ({
  lower: SortKey.lowerBound(`${prefix}\u0002`),
  upper: SortKey.prefixUpperBound(prefix),
  descending: false
})

/** The sort keys of a sealed prefix's sealed stored keys. */
const sealedRange = (prefix: string): SortKeyRange => ({
  lower: SortKey.lowerBound(`${prefix}${SealedKeys.marker}`),
  upper: SortKey.prefixUpperBound(`${prefix}${SealedKeys.marker}`),
  descending: false
})

/**
 * Whether a sealed prefix holds anything stored in clear: an event in the live range, a grave or a history copy.
 * One short read each (at most a page); what the store asks when it opens, and the migration when it is done.
 */
export const holdsClearKeys = (
  table: EventTable["Service"],
  prefix: string
): Effect.Effect<boolean, TableError> =>
  Effect.gen(function*() {
    const range = clearRange(prefix)
    const found = (stream: Stream.Stream<unknown, TableError>) => Effect.map(Stream.runHead(stream), Option.isSome)
    if (yield* found(table.scan(range))) return true
    if (yield* found(table.graves(Key.toBytes(`${prefix}\u0002`), range.upper))) return true
    return yield* found(table.scan({ ...range, area: "history" }))
  })

/** The prefixes of `prefixes` that still hold keys stored in clear. */
export const migrating = (
  table: EventTable["Service"],
  prefixes: ReadonlyArray<SealedPrefix>
): Effect.Effect<ReadonlyArray<SealedPrefix>, TableError> =>
  Effect.filter(prefixes, (entry) => holdsClearKeys(table, entry.prefix))

/**
 * Records that `prefixes` (sealed prefixes still holding clear keys) are being sealed (see
 * `LayoutRecord.recordSealing`: processes configured without them stop serving within their layout lease), and gives
 * what a move of their keys waits first: until the drain after the latest of their recorded begins has passed
 * (`LayoutLease.movesFrom`), a clock compare after. Records nothing when `prefixes` is empty.
 */
export const fence = (
  location: Location,
  prefixes: ReadonlyArray<SealedPrefix>,
  lease: LayoutLease.LayoutLease | undefined
): Effect.Effect<Effect.Effect<void>, ConfigInvalid | Throttled | StorageFailure, Dynamo> =>
  prefixes.length === 0 ? Effect.succeed(Effect.void) : Effect.gen(function*() {
    const recorded = yield* LayoutRecord.recordSealing(location, prefixes.map((entry) => entry.prefix))
    const mine = recorded.filter((entry) => prefixes.some((prefix) => prefix.prefix === entry.prefix))
    const from = LayoutLease.movesFrom(Math.max(...mine.map((entry) => entry.begin)), lease ?? LayoutLease.defaultLease)
    return LayoutFence.awaitFrom(from, `namespace ${location.namespace}: keys under sealed prefixes move sealed`)
  })

/**
 * The newest event of a key being relocated (see `Relocation`): at its new place (`target`), else at its old one
 * (`source`), else at its new place again: the key may have moved between the two reads, and been cleaned up at once.
 * The places are the caller's: a clear and a sealed stored key here, two partitions for a partition move.
 */
export const latest = <E, R>(
  target: Effect.Effect<Option.Option<Event>, E, R>,
  source: Effect.Effect<Option.Option<Event>, E, R>
): Effect.Effect<Option.Option<Event>, E, R> =>
  Effect.gen(function*() {
    const moved = yield* target
    if (Option.isSome(moved)) return moved
    const before = yield* source
    return Option.isSome(before) ? before : yield* target
  })

/**
 * Makes sure a key being relocated (see `Relocation`) is at its new place before anything is appended there: moved
 * now if the new place (`arrived` reads it) holds no event yet. Used for a sealed prefix's clear keys and for keys
 * changing partition alike. Keys known to be resolved are remembered (a key never goes back). A move waits for
 * `beforeMove` first (see {@link fence}).
 */
export const makeResolver = (relocation: Relocation, beforeMove: Effect.Effect<void> = Effect.void) => {
  const remembered = 100_000
  const resolved = new Set<string>()
  return (
    arrived: Effect.Effect<Option.Option<Event>, ReadError>,
    from: KeyPlace,
    to: KeyPlace,
    realKey: string | undefined
  ): Effect.Effect<void, RelocationError | ReadError> =>
    Effect.gen(function*() {
      if (resolved.has(to.key)) return
      if (Option.isNone(yield* arrived)) {
        yield* beforeMove
        yield* relocation.relocate(from, to, realKey)
      }
      if (resolved.size >= remembered) resolved.clear()
      resolved.add(to.key)
    })
}

/**
 * The live items of a migrating prefix within `start..end`, in the range's order: the clear keys' newest events are
 * read first, then the sealed keys' (tombstones too); a key found at both has moved, and its sealed events win. Read
 * in that order, a key moving meanwhile is found at one or the other (a move copies before it removes). Sorted in
 * memory, up to `bound` live keys.
 */
export const migratingItems = (
  table: EventTable["Service"],
  prefix: string,
  range: { readonly start: string; readonly end: string; readonly descending?: boolean | undefined },
  bound: number
): Effect.Effect<ReadonlyArray<Item>, ReadError | SealedRangeTooLarge> =>
  Effect.gen(function*() {
    const newest = (keys: SortKeyRange, live: boolean) =>
      table.scan(keys).pipe(
        (events) => NewestEvents.newestPerKey(events, false),
        Stream.filterEffect((stored) =>
          live
            ? Effect.map(Clock.currentTimeMillis, (now) => NewestEvents.mayBeLive(stored, now))
            : Effect.succeed(true)
        ),
        Stream.mapEffect((stored) => table.decode(stored)),
        Stream.runCollect
      )
    const clear = yield* newest(clearRange(prefix), true)
    const sealed = yield* newest(sealedRange(prefix), false)
    const now = yield* Clock.currentTimeMillis
    const byKey = new Map<string, Item | undefined>()
    for (const event of sealed) if (event.realKey !== undefined) byKey.set(event.realKey, liveItem(event, now))
    for (const event of clear) if (!byKey.has(callerKey(event))) byKey.set(callerKey(event), liveItem(event, now))
    const inside = (key: string) => Key.compare(range.start, key) <= 0 && Key.compare(key, range.end) <= 0
    const items = [...byKey.values()].filter((item): item is Item => item !== undefined && inside(item.key))
    if (items.length > bound) return yield* new SealedRangeTooLarge({ prefix, limit: bound })
    return items.sort((a, b) => range.descending ? Key.compare(b.key, a.key) : Key.compare(a.key, b.key))
  })

/**
 * Merges items read elsewhere (`outside`, in range order, none under the migrating prefixes) with the sorted items of
 * the migrating prefixes, keeping range order.
 */
export const mergeInOrder = <E, R>(
  outside: Stream.Stream<Item, E, R>,
  blocks: ReadonlyArray<Item>,
  descending: boolean
): Stream.Stream<Item, E, R> => {
  const before = (a: Item, b: Item) => descending ? Key.compare(a.key, b.key) > 0 : Key.compare(a.key, b.key) < 0
  return outside.pipe(
    Stream.mapAccum(() => 0, (next, item): readonly [number, ReadonlyArray<Item>] => {
      const out: Array<Item> = []
      while (next < blocks.length && before(blocks[next]!, item)) out.push(blocks[next++]!)
      out.push(item)
      return [next, out]
    }, { onHalt: (next) => blocks.slice(next) })
  )
}

/**
 * The live items of a range that reaches into the migrating prefixes `moving` (see `Store.items`): each such prefix
 * answered by {@link migratingItems}, merged into the rest of the range as `read` and `KeySealing.sealedItems` give it.
 */
export const migratingRange = <E, R>(
  table: EventTable["Service"],
  sealer: KeySealer.KeySealer["Service"],
  moving: ReadonlyArray<SealedPrefix>,
  range: KeySealing.SealedRange & { readonly start: string; readonly end: string },
  bound: number,
  read: (range: KeySealing.SealedRange) => Stream.Stream<Item, E, R>
): Stream.Stream<Item, E | ReadError | SealedRangeTooLarge | KeySealer.SealError, R> =>
  Stream.unwrap(Effect.gen(function*() {
    const blocks = yield* Effect.forEach(
      range.descending ? [...moving].reverse() : moving,
      (entry) => migratingItems(table, entry.prefix, range, bound)
    )
    // The rest as usual, the migrating prefixes left out (their items are the blocks').
    const others = { ...sealer, prefixes: sealer.prefixes.filter((entry) => !moving.includes(entry)) }
    const outside = KeySealing.sealedItems(others, { ...range, limit: undefined }, bound, read).pipe(
      Stream.filter((item) => SealedKeys.coveringPrefix(moving, item.key) === undefined)
    )
    const merged = mergeInOrder(outside, blocks.flat(), range.descending ?? false)
    return limited(merged, range.limit)
  }))

/**
 * Which removals of a key's events are a relocation's (see `Relocation`): the worker's tamper watch asks before it
 * calls the removal of a key's newest event a rollback. Provided by `Store.layer`.
 */
export class MovedKeys extends Context.Service<MovedKeys, {
  /**
   * Whether `key` was moved away by a relocation with its events up to `seq`: stored in clear under a sealed prefix
   * with its sealed form holding an event at `seq` or later, or changing partition in a layout migration with its new
   * partition holding one (see `StoreLayout.LayoutMigration`). Their removal is the move's.
   */
  readonly movedAway: (key: string, seq: number) => Effect.Effect<boolean, ReadError | KeySealer.SealError>
}>()("dynastate/MovedKeys") {
  /** The moved keys of a store sealing `prefixes` (none moved when it seals nothing) and changing layout, if it is. */
  static readonly layer = (
    prefixes: ReadonlyArray<SealedPrefix> | undefined
  ): Layer.Layer<MovedKeys, never, EventTable | DataKeys> =>
    Layer.effect(
      MovedKeys,
      Effect.gen(function*() {
        const table = yield* EventTable
        const layout = Option.getOrUndefined(yield* Effect.serviceOption(LayoutMigration))
        const partitionMoved = (key: string, seq: number) =>
          layout === undefined ? Effect.succeed(false) : layout.movedAway(key, seq)
        if (prefixes === undefined || prefixes.length === 0) return MovedKeys.of({ movedAway: partitionMoved })
        const sealer = yield* Effect.orDie(KeySealer.make(yield* DataKeys, prefixes))
        return MovedKeys.of({
          movedAway: (key, seq) =>
            Effect.gen(function*() {
              if (yield* partitionMoved(key, seq)) return true
              if (SealedKeys.place(prefixes, key)._tag !== "Seal") return false
              const latest = yield* table.latestState(yield* sealer.seal(key))
              return Option.isSome(latest) && latest.value.seq >= seq
            })
        })
      })
    )
}
