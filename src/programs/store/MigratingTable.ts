/**
 * The event table of a store serving a namespace whose layout is changing (see `LayoutTransition`,
 * `PartitionMigration`): each key whose partition differs between the old layout and the new one is at its old
 * partition until it is moved, at its new one after, and at both (the same events) for a moment while it moves
 * (see `Relocation`). Everything the store, its actors and its atomic writes ask of the event table is answered here
 * for both places, so a key never reads as missing or twice, and nothing is appended to an old partition:
 *
 * - a key's newest event is read at the new place, else the old one, else the new one again (`SealedFallback.latest`);
 * - a range (live range, history area, graves) is read window by window: a window of the old layout's items first,
 *   then the new layout's up to the same sort key, merged by sort key (an item at both is the same event, kept once).
 *   A key moving meanwhile is found at one or the other, since a move copies before it removes;
 * - an append (or a transaction) first moves its keys, then writes at the new place.
 *
 * Keys that do not move, and ranges that meet no changed prefix, go to the new layout's table alone.
 */
import { Effect, Stream } from "effect"
import type { Option } from "effect"
import { StorageFailure } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import * as LayoutTransition from "../../domain/LayoutTransition.ts"
import type { Transition } from "../../domain/LayoutTransition.ts"
import * as SortKey from "../../domain/SortKey.ts"
import { partitionOf, sortKeyOf as itemSortKey } from "../../infra/EventRecord.ts"
import type { StoredEvent, StoredItem } from "../../infra/EventRecord.ts"
import { EventTable } from "../../infra/EventTable.ts"
import type { ReadError, SortKeyRange } from "../../infra/EventTable.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import { keyPartition, liveOfArea } from "../../infra/PartitionKeys.ts"
import type { Relocation, RelocationError } from "../../infra/Relocation.ts"
import * as SealedFallback from "./SealedFallback.ts"

/** Items of the old layout read before the new layout's items up to the same sort key. */
const windowSize = 100

/**
 * The items of a range at both places, in range order, each once (the new place's copy kept): the old place is read
 * a window ahead of the new one, so whichever moment a key moves, it is read at one of them. Items are events as a
 * rule; `orderOf` gives an item's sort key, which is the same at both places for the same item.
 */
export const windowed = <A, E, R>(
  source: (lower: Uint8Array, upper: Uint8Array) => Stream.Stream<A, E, R>,
  target: (lower: Uint8Array, upper: Uint8Array) => Stream.Stream<A, E, R>,
  range: { readonly lower: Uint8Array; readonly upper: Uint8Array; readonly descending: boolean },
  orderOf: (item: A) => Uint8Array
): Stream.Stream<A, E, R> =>
  Stream.suspend(() => {
    const { descending } = range
    const before = (a: Uint8Array, b: Uint8Array) => descending ? Buffer.compare(a, b) > 0 : Buffer.compare(a, b) < 0
    let cursor = descending ? range.upper : range.lower
    // The edge of the last window: the new place's item there (if any) went out with that window.
    let emitted: Uint8Array | undefined
    const targetTo = (edge: Uint8Array) => {
      const skip = emitted
      const read = descending ? target(edge, cursor) : target(cursor, edge)
      return skip === undefined ? read : Stream.filter(read, (stored) => Buffer.compare(orderOf(stored), skip) !== 0)
    }
    const windows = source(range.lower, range.upper).pipe(
      Stream.grouped(windowSize),
      Stream.flatMap((group) =>
        Stream.suspend(() => {
          const edge = orderOf(group[group.length - 1]!)
          const merged = targetTo(edge).pipe(
            Stream.mapAccum(() => 0, (next, stored): readonly [number, ReadonlyArray<A>] => {
              const out: Array<A> = []
              const order = orderOf(stored)
              while (next < group.length && before(orderOf(group[next]!), order)) out.push(group[next++]!)
              // The same item at both places: the new place's copy.
              if (next < group.length && Buffer.compare(orderOf(group[next]!), order) === 0) next++
              out.push(stored)
              return [next, out]
            }, { onHalt: (next) => group.slice(next) })
          )
          cursor = edge
          emitted = edge
          return merged
        })
      )
    )
    return Stream.concat(windows, Stream.suspend(() => targetTo(descending ? range.lower : range.upper)))
  })

const sortKeyOf = (stored: StoredEvent): Uint8Array => itemSortKey(stored.item)
const graveOrder = (stored: StoredEvent): Uint8Array => SortKey.keyPrefix(stored.key)

/** A relocation failure as the event table's callers know failures: a conflict is a storage failure to retry. */
const asStorage = <E extends RelocationError | ReadError>(error: E) =>
  error._tag === "RelocationConflict"
    ? new StorageFailure({ operation: "relocate", reason: error.message })
    : error as Exclude<E, { readonly _tag: "RelocationConflict" }>

/**
 * The event table serving `transition.to` while keys move from `transition.from`: `source` and `target` are plain
 * tables of the two layouts (same table and namespace).
 */
export const servingTable = (
  source: EventTable["Service"],
  target: EventTable["Service"],
  transition: Transition,
  relocation: Relocation
): EventTable["Service"] => {
  const moves = (key: string) => LayoutTransition.moves(transition, key)
  const touches = (lower: Uint8Array, upper: Uint8Array) => LayoutTransition.touches(transition, lower, upper)
  const resolve = SealedFallback.makeResolver(relocation)
  const arrive = (key: string) =>
    moves(key)
      ? Effect.mapError(
        resolve(
          target.latestState(key),
          { location: source.location, key },
          { location: target.location, key },
          undefined
        ),
        asStorage
      )
      : Effect.void
  const newest =
    <E>(read: (table: EventTable["Service"]) => (key: string) => Effect.Effect<Option.Option<Event>, E>) =>
    (key: string) => moves(key) ? SealedFallback.latest(read(target)(key), read(source)(key)) : read(target)(key)
  const scan = (range: SortKeyRange) =>
    touches(range.lower, range.upper)
      ? windowed(
        (lower, upper) => source.scan({ ...range, lower, upper }),
        (lower, upper) => target.scan({ ...range, lower, upper }),
        range,
        sortKeyOf
      )
      : target.scan(range)
  const graves = (lower: Uint8Array, upper: Uint8Array) =>
    touches(lower, upper)
      ? windowed(source.graves, target.graves, { lower, upper, descending: false }, graveOrder)
      : target.graves(lower, upper)
  /** Whether an item was read at its old partition: its chunks then lie beside it there. */
  const atSource = (stored: { readonly item: StoredItem }) => {
    const partition = partitionOf(stored.item)
    const sort = itemSortKey(stored.item)
    const live = partition === undefined ? undefined : liveOfArea(partition, "history") ?? partition
    return live !== undefined && sort.length > 0 && live !== keyPartition(target.location, SortKey.decode(sort).key)
  }
  return EventTable.of({
    ...target,
    append: (event, deadline) => Effect.andThen(arrive(event.key), target.append(event, deadline)),
    appendAfter: (event, after, deadline) =>
      Effect.andThen(arrive(event.key), target.appendAfter(event, after, deadline)),
    latest: newest((table) => table.latest),
    latestState: newest((table) => table.latestState),
    scan,
    graves,
    // An item read at its old partition takes its chunks from beside it (values are bound to the namespace alone).
    decode: (stored, options) => (atSource(stored) ? source.decode(stored, options) : target.decode(stored, options)),
    decodeAll: (stored, options) =>
      stored.some(atSource)
        ? Effect.forEach(stored, (each) => (atSource(each) ? source : target).decode(each, options))
        : target.decodeAll(stored, options),
    transact: (writes, token, deadline) =>
      Effect.andThen(
        Effect.forEach(writes, (write) => arrive(write._tag === "Append" ? write.event.key : write.key), {
          discard: true
        }).pipe(
          Effect.catchTags({
            DecryptionFailed: (error) =>
              Effect.fail(new StorageFailure({ operation: "relocate", reason: error.message })),
            Shredded: (error) => Effect.fail(new StorageFailure({ operation: "relocate", reason: error.message }))
          })
        ),
        target.transact(writes, token, deadline)
      )
  })
}

/** The history area serving a changing layout: a moving key's archived events are read at both places, old first. */
export const servingArea = (
  source: HistoryArea["Service"],
  target: HistoryArea["Service"],
  transition: Transition
): HistoryArea["Service"] =>
  HistoryArea.of({
    ...target,
    archived: (key) =>
      LayoutTransition.moves(transition, key)
        ? Stream.unwrap(Effect.gen(function*() {
          const old = yield* Stream.runCollect(source.archived(key))
          const moved = yield* Stream.runCollect(target.archived(key))
          const bySeq = new Map<number, StoredEvent>()
          for (const stored of [...old, ...moved]) bySeq.set(stored.seq, stored)
          return Stream.fromIterable([...bySeq.values()].sort((a, b) => a.seq - b.seq))
        }))
        : target.archived(key)
  })
