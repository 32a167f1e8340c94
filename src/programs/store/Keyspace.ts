/**
 * Typed keyspaces: a typed view of the keys under one prefix of the store,
 * keys and values described by Effect schemas, values stored as UTF-8 JSON (or
 * through a codec of your choice).
 *
 * ```ts
 * import { Effect, Schema, Stream } from "effect"
 * import * as Keyspace from "./Keyspace.ts"
 *
 * const UserId = Schema.String.pipe(Schema.brand("UserId"))
 * const User = Schema.Struct({ name: Schema.String, email: Schema.String, age: Schema.Int })
 *
 * const Users = Keyspace.make({ prefix: "/users/", key: UserId, value: User })
 *
 * const program = Effect.gen(function*() {              // Effect<…, …, Store>
 *   const id = UserId.make("alice")
 *   yield* Users.create(id, { name: "Alice", email: "alice@example.com", age: 36 })  // "/users/alice"
 *   const alice = yield* Users.get(id)                  // { key: UserId, value: User, expires?, revision }
 *   yield* Users.conditionalUpdate({ ...alice, value: { ...alice.value, age: 37 } })
 *   yield* Users.items({ descending: true, limit: 10 }).pipe(
 *     Stream.runForEach((user) => Effect.log(user.key, user.value.email))
 *   )
 * })
 * ```
 *
 * Every operation needs the `Store` service, as any other Effect service does;
 * `Users.bind(store)` gives the same operations on one store instance, needing
 * nothing. Typed keys and values are checked before any I/O: a key or value
 * its schema refuses fails with `KeyspaceEncodeError`, a key that encodes to
 * something the store refuses (empty, a NUL, too long) with `BadParameter`, and
 * nothing is written. Whatever is read back is decoded with the same schemas: a
 * stored key or value that does not decode fails with `KeyspaceDecodeError`
 * naming the store key and the field. The store's own errors pass through.
 *
 * A keyspace owns every key under its prefix: do not nest a keyspace under
 * another's prefix ("/users/" and "/users/admins/"), or the outer one reads the
 * inner one's records and fails to decode them. The prefix itself is no key
 * of the keyspace (no typed key encodes to nothing), so ranges and watches
 * leave it out. Ranges run in the store's order, the UTF-8 byte order of the
 * encoded keys: encode numbers with a fixed width if their order matters.
 */
import type { Effect } from "effect"
import { Stream } from "effect"
import type { Schema } from "effect"
import type { BadParameter, CompareFailed, HistoryGap, IncorrectRevision, NotFound } from "../../domain/Errors.ts"
import type { AlreadyExists, SealedRangeTooLarge } from "../../domain/Errors.ts"
import type { EventOp } from "../../domain/Event.ts"
import type { Item as StoreItem } from "../../domain/Item.ts"
import type { PastPoint } from "./History.ts"
import type { Codec } from "./KeyspaceCodec.ts"
import { conversions } from "./KeyspaceCodec.ts"
import type { KeyspaceDecodeError, KeyspaceEncodeError } from "./KeyspaceCodec.ts"
import { makeOperations } from "./KeyspaceOperations.ts"
import type { StoreService } from "./KeyspaceOperations.ts"
import { Store } from "./Store.ts"
import type { ReadFailure, WriteFailure } from "./Store.ts"
import type { WatchError, WatchPosition } from "./Watch.ts"

export {
  CodecFailure,
  jsonCodec,
  KeyspaceDecodeError,
  KeyspaceEncodeError,
  makeCodec,
  textCodec
} from "./KeyspaceCodec.ts"
export type { Codec, Path } from "./KeyspaceCodec.ts"

/** A stored record of a keyspace, decoded. `expires` is epoch milliseconds. */
export interface Item<K, V> {
  readonly key: K
  readonly value: V
  readonly expires?: number | undefined
  readonly revision: string
}

/** Names one stored revision of a typed key, as every write returns. */
export interface Lease<K> {
  readonly key: K
  readonly revision: string
}

/** Options of a write. */
export interface WriteOptions {
  /** When the item expires, epoch milliseconds; none: never. */
  readonly expires?: number | undefined
}

/** Typed bounds of a range, both inclusive, ordered by encoded key; the whole keyspace by default. */
export interface Bounds<K> {
  /** The smallest key; the keyspace's first by default. */
  readonly from?: K | undefined
  /** The largest key; the keyspace's last by default. */
  readonly to?: K | undefined
}

/** Which records a range reads, in which order, how many. */
export interface RangeOptions<K> extends Bounds<K> {
  /** Largest key first. */
  readonly descending?: boolean | undefined
  /** At most this many records (0: no limit). */
  readonly limit?: number | undefined
}

/** Options of a watch (see `Store.watch`). */
export interface WatchOptions {
  /** Events buffered for a slow consumer before the watch fails with `WatcherOverflow`. */
  readonly capacity?: number | undefined
  /** Continue after a position an earlier watch (or a `KeyspaceDecodeError` of one) returned. */
  readonly resumeFrom?: WatchPosition | undefined
}

/** What a watch of a keyspace delivers: `Init` first, then changes, each key's in order. */
export type WatchEvent<K, V> =
  | { readonly _tag: "Init" }
  | { readonly _tag: "Put"; readonly item: Item<K, V>; readonly seq: number; readonly position: WatchPosition }
  | {
    readonly _tag: "Delete"
    readonly key: K
    readonly revision: string
    readonly seq: number
    readonly position: WatchPosition
  }
  | {
    readonly _tag: "Expire"
    readonly key: K
    readonly revision: string
    readonly seq: number
    readonly position: WatchPosition
  }

/** One stored event of a key, its value decoded (absent on `delete` and `expire`, and when shredded). */
export interface HistoryEvent<K, V> {
  readonly key: K
  readonly seq: number
  readonly revision: string
  readonly op: EventOp
  readonly value?: V | undefined
  readonly expires?: number | undefined
  readonly timestamp: number
  /** On `keep-alive`: the revision of the value it keeps. */
  readonly valueRevision?: string | undefined
  /** Set when the value was shredded. */
  readonly shredded?: { readonly scope: string } | undefined
}

/** A typed key that cannot be a store key: its schema refuses it, or it encodes to a key the store refuses. */
export type KeyError = KeyspaceEncodeError | BadParameter

/** Failures every typed write can have besides its own; nothing is written when the key or value does not encode. */
export type TypedWriteFailure = KeyError | WriteFailure

/** Failures every typed read can have. */
export type TypedReadFailure = KeyError | ReadFailure | KeyspaceDecodeError

/** Failures of a typed watch: the store's, a bad prefix, and a change that does not decode. */
export type TypedWatchFailure = WatchError | KeyspaceDecodeError | BadParameter

/** The operations of a keyspace; `R` is what they need (`Store`, or nothing once bound to a store). */
export interface Operations<K, V, R> {
  /** The live record of a key. */
  readonly get: (key: K) => Effect.Effect<Item<K, V>, NotFound | TypedReadFailure, R>
  /** Stores a record if the key has no live one. */
  readonly create: (
    key: K,
    value: V,
    options?: WriteOptions
  ) => Effect.Effect<Lease<K>, AlreadyExists | TypedWriteFailure, R>
  /** Stores a record, replacing whatever is there. */
  readonly put: (key: K, value: V, options?: WriteOptions) => Effect.Effect<Lease<K>, TypedWriteFailure, R>
  /** Replaces a live record. */
  readonly update: (
    key: K,
    value: V,
    options?: WriteOptions
  ) => Effect.Effect<Lease<K>, NotFound | TypedWriteFailure, R>
  /**
   * Replaces a live record whose value is `expected`. The stored bytes are
   * compared, so the codec must be deterministic (the default JSON codec is).
   */
  readonly compareAndSwap: (
    key: K,
    expected: V,
    replacement: V,
    options?: WriteOptions
  ) => Effect.Effect<Lease<K>, CompareFailed | TypedWriteFailure, R>
  /** Replaces a live record whose revision is `item.revision` (an item read before, with a new value). */
  readonly conditionalUpdate: (item: Item<K, V>) => Effect.Effect<Lease<K>, IncorrectRevision | TypedWriteFailure, R>
  /** Deletes a live record whose revision is `revision`. */
  readonly conditionalDelete: (
    key: K,
    revision: string
  ) => Effect.Effect<void, IncorrectRevision | TypedWriteFailure, R>
  /** Deletes a live record. */
  readonly delete: (key: K) => Effect.Effect<void, NotFound | TypedWriteFailure, R>
  /** Gives a live record a new expiry (or none), keeping its revision; a non-empty lease revision must be live. */
  readonly keepAlive: (
    lease: Lease<K>,
    expires: number | undefined
  ) => Effect.Effect<Lease<K>, NotFound | IncorrectRevision | TypedWriteFailure, R>
  /** The live records of a range, lazily paged, either direction; fails at the first record that does not decode. */
  readonly items: (options?: RangeOptions<K>) => Stream.Stream<Item<K, V>, TypedReadFailure, R>
  /** The live records of a range, collected. */
  readonly getRange: (options?: RangeOptions<K>) => Effect.Effect<ReadonlyArray<Item<K, V>>, TypedReadFailure, R>
  /** Deletes every live record of a range (undecodable ones too); returns how many. */
  readonly deleteRange: (options?: Bounds<K>) => Effect.Effect<number, TypedWriteFailure | SealedRangeTooLarge, R>
  /**
   * A live feed of the keyspace's changes, decoded: `Init`, then `Put`,
   * `Delete` and `Expire`. A change that does not decode ends the feed with a
   * `KeyspaceDecodeError` carrying its position: watch again from there to go on.
   */
  readonly watch: (options?: WatchOptions) => Stream.Stream<WatchEvent<K, V>, TypedWatchFailure, R>
  /** Every stored event of a key, oldest first, values decoded. */
  readonly history: (key: K) => Stream.Stream<HistoryEvent<K, V>, TypedReadFailure | HistoryGap, R>
  /** The record a key held right after a revision was written, or at a moment (epoch ms). */
  readonly getAt: (key: K, at: PastPoint) => Effect.Effect<Item<K, V>, NotFound | TypedReadFailure | HistoryGap, R>
}

/** A keyspace's operations on one store instance: they need nothing more. */
export interface Bound<K, V> extends Operations<K, V, never> {}

/** A typed keyspace: its operations (needing `Store`) and its conversions, for raw records and projections. */
export interface Keyspace<K, V> extends Operations<K, V, Store> {
  /** The prefix of every store key of the keyspace. */
  readonly prefix: string
  /** The operations on one store instance, e.g. one opened for another table or namespace. */
  readonly bind: (store: Store["Service"]) => Bound<K, V>
  /** The store key of a typed key (`field` names the argument in a `BadParameter`, "key" by default). */
  readonly storeKey: (key: K, field?: string) => Effect.Effect<string, KeyError>
  /** The typed key of a store key under the prefix. */
  readonly decodeKey: (storeKey: string) => Effect.Effect<K, KeyspaceDecodeError>
  /** Decodes a record read with the plain store (a range, a projection's event) as one of the keyspace. */
  readonly decodeItem: (item: StoreItem) => Effect.Effect<Item<K, V>, KeyspaceDecodeError>
  /** The bytes the keyspace stores for a value (under a store key, for error messages). */
  readonly encodeValue: (storeKey: string, value: V) => Effect.Effect<Uint8Array, KeyspaceEncodeError>
  /** Decodes stored bytes of a store key as a value. */
  readonly decodeValue: (storeKey: string, bytes: Uint8Array) => Effect.Effect<V, KeyspaceDecodeError>
}

/** What {@link make} takes. */
export interface MakeOptions<K, V> {
  /** Where the keyspace lives: every store key is this prefix plus a key's encoding. A valid store key itself. */
  readonly prefix: string
  /** Encodes typed keys to the non-empty string after the prefix, and decodes them back. */
  readonly key: Schema.Codec<K, string>
  /** Describes the values; they are stored in the schema's JSON form (`Schema.toCodecJson`). */
  readonly value: Schema.Codec<V, unknown>
  /** Turns the JSON form into bytes and back; UTF-8 JSON ({@link jsonCodec}) by default. */
  readonly codec?: Codec | undefined
}

/**
 * A typed keyspace over the keys under `prefix`. Building it does no I/O and
 * never fails: a bad prefix fails each operation with `BadParameter`.
 */
export const make = <K, V>(options: MakeOptions<K, V>): Keyspace<K, V> => {
  const c = conversions(options)
  const ops = makeOperations(c)
  const bind = (store: StoreService): Bound<K, V> => ({
    get: (key) => ops.get(store, key),
    create: (key, value, writeOptions) => ops.create(store, key, value, writeOptions),
    put: (key, value, writeOptions) => ops.put(store, key, value, writeOptions),
    update: (key, value, writeOptions) => ops.update(store, key, value, writeOptions),
    compareAndSwap: (key, expected, replacement, writeOptions) =>
      ops.compareAndSwap(store, key, expected, replacement, writeOptions),
    conditionalUpdate: (item) => ops.conditionalUpdate(store, item),
    conditionalDelete: (key, revision) => ops.conditionalDelete(store, key, revision),
    delete: (key) => ops.delete(store, key),
    keepAlive: (lease, expires) => ops.keepAlive(store, lease, expires),
    items: (rangeOptions) => ops.items(store, rangeOptions),
    getRange: (rangeOptions) => ops.getRange(store, rangeOptions),
    deleteRange: (rangeOptions) => ops.deleteRange(store, rangeOptions),
    watch: (watchOptions) => ops.watch(store, watchOptions),
    history: (key) => ops.history(store, key),
    getAt: (key, at) => ops.getAt(store, key, at)
  })
  const stream = <A, E>(f: (store: StoreService) => Stream.Stream<A, E>): Stream.Stream<A, E, Store> =>
    Stream.unwrap(Store.useSync(f))
  return {
    prefix: c.prefix,
    bind,
    storeKey: c.storeKey,
    decodeKey: c.decodeKey,
    decodeItem: ops.decodeItem,
    encodeValue: c.encodeValue,
    decodeValue: c.decodeValue,
    get: (key) => Store.use((store) => ops.get(store, key)),
    create: (key, value, writeOptions) => Store.use((store) => ops.create(store, key, value, writeOptions)),
    put: (key, value, writeOptions) => Store.use((store) => ops.put(store, key, value, writeOptions)),
    update: (key, value, writeOptions) => Store.use((store) => ops.update(store, key, value, writeOptions)),
    compareAndSwap: (key, expected, replacement, writeOptions) =>
      Store.use((store) => ops.compareAndSwap(store, key, expected, replacement, writeOptions)),
    conditionalUpdate: (item) => Store.use((store) => ops.conditionalUpdate(store, item)),
    conditionalDelete: (key, revision) => Store.use((store) => ops.conditionalDelete(store, key, revision)),
    delete: (key) => Store.use((store) => ops.delete(store, key)),
    keepAlive: (lease, expires) => Store.use((store) => ops.keepAlive(store, lease, expires)),
    items: (rangeOptions) => stream((store) => ops.items(store, rangeOptions)),
    getRange: (rangeOptions) => Store.use((store) => ops.getRange(store, rangeOptions)),
    deleteRange: (rangeOptions) => Store.use((store) => ops.deleteRange(store, rangeOptions)),
    watch: (watchOptions) => stream((store) => ops.watch(store, watchOptions)),
    history: (key) => stream((store) => ops.history(store, key)),
    getAt: (key, at) => Store.use((store) => ops.getAt(store, key, at))
  }
}
