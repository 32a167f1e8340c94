/**
 * The one reader of key ranges: the newest event of every key in a range, as
 * stored (not decrypted), lazily, page by page. What the store's `getRange`,
 * `items` and `deleteRange` read (live items only), what compaction and the
 * expiry projection go through (every key of the live range), and what
 * projections are rebuilt from (deleted keys too, from their graves).
 *
 * Pages are DynamoDB's own (up to 1 MB) and never shrink with a caller's
 * limit: a limit takes from the stream, so the reads stop when it is reached.
 * Everything is judged from an event's clear attributes (see
 * `EventRecord.StoredEvent`), so tombstones, expired items and superseded
 * events are dropped before anything is decrypted; callers decrypt what is left.
 */
import { Clock, Effect, Result, Stream } from "effect"
import type { Array as Arr, Pull } from "effect"
import type { TableError } from "../../domain/Errors.ts"
import { carriesValue, liveItem } from "../../domain/Event.ts"
import type { Event } from "../../domain/Event.ts"
import { isExpired } from "../../domain/Item.ts"
import type { Item } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import * as SortKey from "../../domain/SortKey.ts"
import type { StoredEvent } from "../../infra/EventRecord.ts"
import type { EventTable, ReadError, SortKeyRange } from "../../infra/EventTable.ts"

/** Which keys: an inclusive range (`start <= key <= end`), or every key under any of some prefixes (all when none). */
export type Keys =
  | { readonly start: string; readonly end: string }
  | { readonly prefixes: ReadonlyArray<string> }

/** Every key of the namespace. */
export const allKeys: Keys = { prefixes: [] }

/** Which newest events to read, and in which direction. */
export type ReadOptions =
  /**
   * Keys holding a value: tombstones and expired items are left out. Expiry is judged at `at`, or when absent at
   * the time each page is read, so a stream consumed slowly never judges a late page by the time it started.
   * Either direction.
   */
  | {
    readonly include: "live"
    readonly at?: number | undefined
    readonly descending?: boolean | undefined
    /**
     * Ask for each next page as soon as a page arrives (see `QueryPages`), so DynamoDB serves it while this process
     * decodes and hands on the last. Only for a reader that takes the whole range (`getRange` without a limit,
     * `deleteRange`): a stream its consumer may stop early would read a page nobody asked for.
     */
    readonly readAhead?: boolean | undefined
  }
  /** Every key with events in the live range, tombstones included (buried ones are not there). Either direction. */
  | { readonly include: "tombstones"; readonly descending?: boolean | undefined }
  /**
   * Every key ever written and not forgotten, in key order: from the live range, or for a deleted key whose
   * tombstone compaction buried, from its grave. What a projection is rebuilt from: reading the live range
   * alone would never tell a rebuilt view that a buried key is gone.
   */
  | { readonly include: "graves" }

/**
 * The sort-key ranges holding exactly the keys under `prefixes` (everything when empty), in key order and
 * disjoint: a prefix inside another one is dropped, so no key is read twice.
 */
export const coveredRanges = (prefixes: ReadonlyArray<string>): ReadonlyArray<SortKeyRange> => {
  if (prefixes.length === 0 || prefixes.includes("")) {
    return [{ lower: new Uint8Array([0]), upper: SortKey.prefixUpperBound(""), descending: false }]
  }
  const sorted = [...new Set(prefixes)].sort(Key.compare)
  const outermost = sorted.filter((prefix, i) => !sorted.slice(0, i).some((other) => prefix.startsWith(other)))
  // The keys under a prefix are the sort keys from its bytes up to its bytes followed by 0xFF (never in UTF-8).
  return outermost.map((prefix) => ({
    lower: Key.toBytes(prefix),
    upper: SortKey.prefixUpperBound(prefix),
    descending: false
  }))
}

/** The sort-key ranges of some keys, in the order they are read. */
const rangesOf = (keys: Keys, descending: boolean): ReadonlyArray<SortKeyRange> => {
  const ranges = "prefixes" in keys
    ? coveredRanges(keys.prefixes)
    : [{ lower: SortKey.lowerBound(keys.start), upper: SortKey.upperBound(keys.end), descending: false }]
  return descending ? ranges.map((range) => ({ ...range, descending })).reverse() : ranges
}

/** Whether a key under some prefixes (or any key when none) was asked for. */
const asked = (keys: Keys, key: string): boolean =>
  !("prefixes" in keys) || keys.prefixes.length === 0 || keys.prefixes.some((prefix) => Key.hasPrefix(key, prefix))

/** Whether a stored event may leave a live item at `now`, judged from its clear attributes without decrypting. */
export const mayBeLive = (stored: StoredEvent, now: number): boolean =>
  stored.op !== undefined && carriesValue({ op: stored.op }) && !isExpired(stored.expires, now)

/**
 * The newest stored event of every key, in scan order. Ascending scans meet a key's newest event first;
 * descending scans meet it last, so the previous key's newest is emitted when the key changes.
 */
export const newestPerKey = <E, R>(
  events: Stream.Stream<StoredEvent, E, R>,
  descending: boolean
): Stream.Stream<StoredEvent, E, R> =>
  descending
    ? Stream.mapAccum(
      events,
      (): StoredEvent | undefined => undefined,
      (pending, stored): readonly [StoredEvent | undefined, ReadonlyArray<StoredEvent>] =>
        pending === undefined || pending.key === stored.key ? [stored, []] : [stored, [pending]],
      { onHalt: (pending) => (pending ? [pending] : []) }
    )
    : Stream.mapAccum(
      events,
      (): string | undefined => undefined,
      (
        previous,
        stored
      ): readonly [string, ReadonlyArray<StoredEvent>] => [stored.key, stored.key === previous ? [] : [stored]]
    )

/** Merges a key-ordered array of live newest events with key-ordered buried tombstones; for a key in both, the higher seq. */
const mergeByKey = <E, R>(
  live: ReadonlyArray<StoredEvent>,
  buried: Stream.Stream<StoredEvent, E, R>
): Stream.Stream<StoredEvent, E, R> =>
  Stream.mapAccum(buried, () => 0, (i, grave): readonly [number, ReadonlyArray<StoredEvent>] => {
    const out: Array<StoredEvent> = []
    while (i < live.length && Key.compare(live[i]!.key, grave.key) < 0) out.push(live[i++]!)
    if (i < live.length && live[i]!.key === grave.key) {
      // Whichever is newer: the live range's event, or the grave of a key re-created since.
      out.push(live[i]!.seq >= grave.seq ? live[i]! : grave)
      i++
    } else {
      out.push(grave)
    }
    return [i, out]
  }, { onHalt: (i) => live.slice(i) })

/**
 * The newest event of every key of a sort-key range, ascending, buried tombstones included.
 *
 * A burial moves a tombstone from the live range to its grave in one transaction, so a key is in one or the
 * other; reading the graves of each stretch of keys only after the live page covering it was read means a
 * key buried between the two reads is found in its grave rather than missed in both.
 */
const withGraves = (
  table: EventTable["Service"],
  range: SortKeyRange
): Stream.Stream<StoredEvent, TableError> =>
  Stream.suspend(() => {
    let previous: string | undefined
    let gravesFrom = range.lower
    const live = table.scan({ ...range, descending: false }).pipe(
      Stream.mapArray((page) => [page] as const),
      Stream.flatMap((page) => {
        // Ascending, a key's newest event comes first; its older ones may run on into the next page.
        const newest = page.filter((stored) => {
          if (stored.key === previous) return false
          previous = stored.key
          return true
        })
        const upTo = SortKey.keyPrefix(page[page.length - 1]!.key)
        const from = gravesFrom
        gravesFrom = new Uint8Array([...upTo, 0])
        return mergeByKey(newest, table.graves(from, upTo))
      })
    )
    return Stream.concat(live, Stream.suspend(() => table.graves(gravesFrom, range.upper)))
  })

/** The newest event of every key asked for, as stored, in key order (or its reverse), lazily. */
export const read = (
  table: EventTable["Service"],
  keys: Keys,
  options: ReadOptions
): Stream.Stream<StoredEvent, TableError> => {
  const descending = options.include !== "graves" && (options.descending ?? false)
  // Pages read ahead are still judged and decoded when pulled, in order.
  const readAhead = options.include === "live" && options.readAhead === true
  const scan = (range: SortKeyRange) => table.scan(readAhead ? { ...range, readAhead } : range)
  const newest = Stream.fromIterable(rangesOf(keys, descending)).pipe(
    Stream.flatMap((range) =>
      options.include === "graves" ? withGraves(table, range) : newestPerKey(scan(range), descending)
    ),
    Stream.filter((stored) => asked(keys, stored.key))
  )
  if (options.include !== "live") return newest
  const at = options.at
  if (at !== undefined) return Stream.filter(newest, (stored) => mayBeLive(stored, at))
  // A page is filtered as a whole when it is pulled: the clock is read then, without an effect per event.
  return Stream.unwrap(
    Clock.clockWith((clock) =>
      Effect.succeed(Stream.filter(newest, (stored) => mayBeLive(stored, clock.currentTimeMillisUnsafe())))
    )
  )
}

/**
 * Stored events decrypted a page at a time (see `EventTable.decodeAll`): one step per page, not several per event.
 */
export const decodePages =
  (table: EventTable["Service"]) =>
  <E, R>(stored: Stream.Stream<StoredEvent, E, R>): Stream.Stream<Event, E | ReadError, R> =>
    Stream.mapArrayEffect(
      stored,
      // As many events as items: a non-empty page decodes to a non-empty page.
      (page) => table.decodeAll(page) as unknown as Effect.Effect<Arr.NonEmptyReadonlyArray<Event>, ReadError>
    )

/**
 * The live items of decoded events, handed on one at a time, each judged by the clock when it is pulled: pages are
 * decoded whole, but a consumer that holds one item a while never gets a later item of the same page that expired
 * meanwhile. One step per item handed on, none per item left out.
 */
export const handOnLive = <E, R>(events: Stream.Stream<Event, E, R>): Stream.Stream<Item, E, R> =>
  Stream.transformPull(events, (pull) =>
    Clock.clockWith((clock) => {
      let page: ReadonlyArray<Event> = []
      let index = 0
      const next = (): Pull.Pull<Arr.NonEmptyReadonlyArray<Item>, E> => {
        while (index < page.length) {
          const item = liveItem(page[index++], clock.currentTimeMillisUnsafe())
          if (item !== undefined) return Effect.succeed([item])
        }
        return Effect.flatMap(pull, (events) => {
          page = events
          index = 0
          return next()
        })
      }
      return Effect.succeed(Effect.suspend(next))
    }))

/**
 * The live items of decoded events, each judged by the clock as its page passes: for a reader that takes every item
 * at once (`getRange` collects them), where {@link handOnLive}'s step per item would change nothing but the cost.
 */
export const liveByPage = <E, R>(events: Stream.Stream<Event, E, R>): Stream.Stream<Item, E, R> =>
  Stream.unwrap(Clock.clockWith((clock) =>
    Effect.succeed(Stream.filterMap(events, (event) => {
      const item = liveItem(event, clock.currentTimeMillisUnsafe())
      return item === undefined ? Result.failVoid : Result.succeed(item)
    }))
  ))
