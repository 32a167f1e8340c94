/**
 * The operations of a typed keyspace over an explicit store: each converts typed keys and values with the
 * keyspace's schemas before it calls the store, and decodes what comes back. `Keyspace.make` binds them to a store
 * instance or to the `Store` service.
 */
import { Effect, Result, Stream } from "effect"
import type { HistoryGap } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import type { Item as StoreItem } from "../../domain/Item.ts"
import type { PastPoint } from "./History.ts"
import type {
  Bounds,
  HistoryEvent,
  Item,
  Lease,
  RangeOptions,
  TypedReadFailure,
  TypedWatchFailure,
  WatchEvent,
  WatchOptions,
  WriteOptions
} from "./Keyspace.ts"
import type { Conversions } from "./KeyspaceCodec.ts"
import { KeyspaceDecodeError } from "./KeyspaceCodec.ts"
import type { Store } from "./Store.ts"
import type { WatchEvent as StoreWatchEvent } from "./Watch.ts"

const toLease = <K>(key: K, lease: { readonly revision: string }): Lease<K> => ({ key, revision: lease.revision })

const toItem = <K, V>(key: K, value: V, item: StoreItem): Item<K, V> =>
  item.expires === undefined
    ? { key, value, revision: item.revision }
    : { key, value, expires: item.expires, revision: item.revision }

/** A store instance, as the operations take it. */
export type StoreService = Store["Service"]

const keyOf = (change: Exclude<StoreWatchEvent, { readonly _tag: "Init" }>) =>
  change._tag === "Put" ? change.item.key : change.key

/** The operations over an explicit store, built once per keyspace. */
export const makeOperations = <K, V>(c: Conversions<K, V>) => {
  const decodeItem = Effect.fnUntraced(function*(item: StoreItem) {
    const key = yield* c.decodeKey(item.key)
    return toItem(key, yield* c.decodeValue(item.key, item.value), item)
  })

  const encoded = Effect.fnUntraced(function*(key: K, value: V) {
    const storeKey = yield* c.storeKey(key)
    return { storeKey, bytes: yield* c.encodeValue(storeKey, value) }
  })

  const range = Effect.fnUntraced(function*(options: Bounds<K>) {
    if (Result.isFailure(c.bounds)) return yield* c.bounds.failure
    const bound = (key: K | undefined, field: "from" | "to", otherwise: string) =>
      key === undefined ? Effect.succeed(otherwise) : c.storeKey(key, field)
    const start = yield* bound(options.from, "from", c.bounds.success.first)
    return { start, end: yield* bound(options.to, "to", c.bounds.success.last) }
  })

  const items = (store: StoreService, options: RangeOptions<K> = {}): Stream.Stream<Item<K, V>, TypedReadFailure> =>
    Stream.unwrap(
      Effect.map(
        range(options),
        ({ start, end }) =>
          store.items({ start, end, descending: options.descending, limit: options.limit }).pipe(
            Stream.mapEffect(decodeItem)
          )
      )
    )

  const watchEvent = (event: StoreWatchEvent): Effect.Effect<WatchEvent<K, V>, KeyspaceDecodeError> =>
    event._tag === "Init"
      ? Effect.succeed(event)
      : Effect.gen(function*(): Effect.fn.Return<WatchEvent<K, V>, KeyspaceDecodeError> {
        const { seq, position } = event
        if (event._tag === "Put") return { _tag: "Put", item: yield* decodeItem(event.item), seq, position }
        return { _tag: event._tag, key: yield* c.decodeKey(event.key), revision: event.revision, seq, position }
      }).pipe(
        // With its position, a consumer can log the change and watch again after it.
        Effect.mapError(({ key, part, path, reason }) =>
          new KeyspaceDecodeError({ key, part, path, reason, position: event.position })
        )
      )

  const historyEvent = Effect.fnUntraced(function*(key: K, event: Event) {
    const value = event.value === undefined ? undefined : yield* c.decodeValue(event.key, event.value)
    const decoded: HistoryEvent<K, V> = {
      key,
      seq: event.seq,
      revision: event.revision,
      op: event.op,
      timestamp: event.timestamp,
      ...(value === undefined ? {} : { value }),
      ...(event.expires === undefined ? {} : { expires: event.expires }),
      ...(event.valueRevision === undefined ? {} : { valueRevision: event.valueRevision }),
      ...(event.shredded === undefined ? {} : { shredded: event.shredded })
    }
    return decoded
  })

  return {
    decodeItem,
    get: Effect.fn("Keyspace.get")(function*(store: StoreService, key: K) {
      const storeKey = yield* c.storeKey(key)
      const item = yield* store.get(storeKey)
      return toItem(key, yield* c.decodeValue(storeKey, item.value), item)
    }),
    create: Effect.fn("Keyspace.create")(function*(store: StoreService, key: K, value: V, options?: WriteOptions) {
      const { storeKey, bytes } = yield* encoded(key, value)
      return toLease(key, yield* store.create({ key: storeKey, value: bytes, expires: options?.expires }))
    }),
    put: Effect.fn("Keyspace.put")(function*(store: StoreService, key: K, value: V, options?: WriteOptions) {
      const { storeKey, bytes } = yield* encoded(key, value)
      return toLease(key, yield* store.put({ key: storeKey, value: bytes, expires: options?.expires }))
    }),
    update: Effect.fn("Keyspace.update")(function*(store: StoreService, key: K, value: V, options?: WriteOptions) {
      const { storeKey, bytes } = yield* encoded(key, value)
      return toLease(key, yield* store.update({ key: storeKey, value: bytes, expires: options?.expires }))
    }),
    compareAndSwap: Effect.fn("Keyspace.compareAndSwap")(
      function*(store: StoreService, key: K, expected: V, replacement: V, options?: WriteOptions) {
        const { storeKey, bytes } = yield* encoded(key, replacement)
        const expectedBytes = yield* c.encodeValue(storeKey, expected)
        return toLease(
          key,
          yield* store.compareAndSwap(
            { key: storeKey, value: expectedBytes },
            { key: storeKey, value: bytes, expires: options?.expires }
          )
        )
      }
    ),
    conditionalUpdate: Effect.fn("Keyspace.conditionalUpdate")(function*(store: StoreService, item: Item<K, V>) {
      const { storeKey, bytes } = yield* encoded(item.key, item.value)
      return toLease(
        item.key,
        yield* store.conditionalUpdate({ key: storeKey, value: bytes, expires: item.expires, revision: item.revision })
      )
    }),
    conditionalDelete: Effect.fn("Keyspace.conditionalDelete")(
      function*(store: StoreService, key: K, revision: string) {
        yield* store.conditionalDelete(yield* c.storeKey(key), revision)
      }
    ),
    delete: Effect.fn("Keyspace.delete")(function*(store: StoreService, key: K) {
      yield* store.delete(yield* c.storeKey(key))
    }),
    keepAlive: Effect.fn("Keyspace.keepAlive")(
      function*(store: StoreService, lease: Lease<K>, expires: number | undefined) {
        const storeKey = yield* c.storeKey(lease.key)
        return toLease(lease.key, yield* store.keepAlive({ key: storeKey, revision: lease.revision }, expires))
      }
    ),
    items,
    getRange: (store: StoreService, options?: RangeOptions<K>) =>
      Stream.runCollect(items(store, options)).pipe(Effect.withSpan("Keyspace.getRange")),
    deleteRange: Effect.fn("Keyspace.deleteRange")(function*(store: StoreService, options: Bounds<K> = {}) {
      const { start, end } = yield* range(options)
      return yield* store.deleteRange(start, end)
    }),
    watch: (store: StoreService, options: WatchOptions = {}): Stream.Stream<WatchEvent<K, V>, TypedWatchFailure> =>
      Result.isFailure(c.bounds)
        ? Stream.fail(c.bounds.failure)
        : store.watch({ prefixes: [c.prefix], capacity: options.capacity, resumeFrom: options.resumeFrom }).pipe(
          // The prefix itself is no key of the keyspace (see the module's doc).
          Stream.filter((event) => event._tag === "Init" || keyOf(event) !== c.prefix),
          Stream.mapEffect(watchEvent)
        ),
    history: (store: StoreService, key: K): Stream.Stream<HistoryEvent<K, V>, TypedReadFailure | HistoryGap> =>
      Stream.unwrap(
        Effect.map(
          c.storeKey(key),
          (storeKey) => store.history(storeKey).pipe(Stream.mapEffect((event) => historyEvent(key, event)))
        )
      ),
    getAt: Effect.fn("Keyspace.getAt")(function*(store: StoreService, key: K, at: PastPoint) {
      const storeKey = yield* c.storeKey(key)
      const item = yield* store.getAt(storeKey, at)
      return toItem(key, yield* c.decodeValue(storeKey, item.value), item)
    })
  }
}
