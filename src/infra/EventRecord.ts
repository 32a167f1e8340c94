/**
 * The DynamoDB item of an event, and back. The value is encrypted here, bound
 * to everything else the item says, so the table never holds plaintext and an
 * item whose attributes were edited or swapped fails to decrypt.
 */
import { Effect, Result } from "effect"
import { DecryptionFailed, StorageFailure, ValueTooLarge } from "../domain/Errors.ts"
import type { Throttled } from "../domain/Errors.ts"
import type { Shredded } from "../domain/Errors.ts"
import type { Event, EventOp } from "../domain/Event.ts"
import { eventOps } from "../domain/Event.ts"
import * as Key from "../domain/Key.ts"
import type { Layout } from "../domain/Partitioning.ts"
import * as SortKey from "../domain/SortKey.ts"
import { DataKeys } from "./crypto/DataKeys.ts"
import type { DataKey } from "./crypto/DataKeys.ts"
import { boundName } from "./crypto/DataKeyStore.ts"
import type { KeyringError } from "./crypto/Keyring.ts"
import * as ValueCipher from "./crypto/ValueCipher.ts"
import type { AttributeMap } from "./Dynamo.ts"
import { keyPartition, longestPartitionBytes } from "./PartitionKeys.ts"

/**
 * Attribute names of an event item. Short, because they count against the 400 KB item limit. Only `src/infra`
 * reads them (and tests of the storage format): programs see {@link StoredEvent}s.
 */
export const Attr = {
  partition: "pk",
  sort: "sk",
  revision: "rev",
  seq: "seq",
  op: "op",
  timestamp: "ts",
  expires: "exp",
  valueRevision: "vrev",
  value: "val",
  ttl: "ttl",
  /** On an event whose value is stored in chunk items (see `ValueChunks`): how many; `val` holds the manifest. */
  chunks: "ch",
  /** A sealed key's real key, encrypted under the value's data key and bound like it (see `SealedKeys`). */
  realKey: "rk",
  /**
   * On a key's newest event copied to another stored key by a relocation (see `Relocation`): not a new write, so
   * stream consumers (watches, projections) skip its record. Set only by the relocation, and only at the target.
   */
  moved: "mv"
} as const

/** Where events live: the table and the namespace (partition) within it, and the store id values are bound to. */
export interface Location {
  readonly table: string
  readonly namespace: string
  /** See `DataKeyLocation.storeId`: the table name unless the store's items moved to another table. */
  readonly storeId?: string | undefined
  /**
   * The namespace's partitioned prefixes (see `Partitioning`, `PartitionKeys`): which partition key each stored key
   * takes. None: every event under the namespace itself. Not bound into values, so an event can move partitions.
   */
  readonly partitions?: Layout | undefined
}

declare const storedItemBrand: unique symbol

/**
 * An event item as DynamoDB holds it, opaque outside `src/infra`: programs hand it back to the infra (to
 * decrypt, archive, remove or bury the event it holds) but cannot read its attributes. Any attribute map is
 * one, so the infra's readers (the event table, the history area, streams, views) make them without ceremony.
 */
export interface StoredItem {
  readonly [storedItemBrand]?: "EventRecord.StoredItem"
}

/** The attributes of a stored item, for the infra's own codecs. */
export const attributesOf = (item: StoredItem): AttributeMap => item as AttributeMap

/** The input of a consistent Query of one partition's sort-key range, inclusive: every reader of event items uses it. */
export const rangeQuery = (table: string, partition: string, lower: Uint8Array, upper: Uint8Array) => ({
  TableName: table,
  KeyConditionExpression: "#pk = :pk AND #sk BETWEEN :lower AND :upper",
  ExpressionAttributeNames: { "#pk": Attr.partition, "#sk": Attr.sort },
  ExpressionAttributeValues: { ":pk": { S: partition }, ":lower": { B: lower }, ":upper": { B: upper } },
  ConsistentRead: true
})

/** The sort key an item is stored under (empty when it has none): the order merged ranges go by. */
export const sortKeyOf = (item: StoredItem): Uint8Array => attributesOf(item)[Attr.sort]?.B ?? new Uint8Array()

/** The partition key an item was read from, if it names one (its areas lie beside it, see `PartitionKeys`). */
export const partitionOf = (item: StoredItem): string | undefined => attributesOf(item)[Attr.partition]?.S

/**
 * An event as stored, read without decrypting anything: its clear attributes parsed, its value still
 * encrypted in `item`. The clear attributes are what range reads and compaction decide by before paying for
 * a decryption; they are authenticated only when the event is decoded (the value is bound to them).
 */
export interface StoredEvent {
  readonly key: string
  readonly seq: number
  /** Undefined when missing or not an operation (such an item fails to decode). */
  readonly op: EventOp | undefined
  /** The expiry, epoch milliseconds, as stored (a malformed one makes the item fail to decode). */
  readonly expires: number | undefined
  /** When the event was decided, epoch milliseconds; undefined when missing or malformed. */
  readonly timestamp: number | undefined
  /** For a copy in the history area with limited retention: from when DynamoDB's TTL may delete it, epoch ms. */
  readonly retainedUntil: number | undefined
  /** The item itself: what the infra decrypts, moves and deletes. */
  readonly item: StoredItem
}

const clearNumber = (item: AttributeMap, name: string): number | undefined => {
  const raw = item[name]?.N
  return raw === undefined ? undefined : Number(raw)
}

/**
 * The event an item holds, its clear attributes parsed and its value left encrypted; a failure says why the
 * item holds no event (it has no valid event sort key).
 */
export const peek = (item: AttributeMap): Result.Result<StoredEvent, string> => {
  const sortKey = item[Attr.sort]?.B
  if (sortKey === undefined) return Result.fail("item has no sort key")
  if (sortKey.length <= Key.sortKeySuffixBytes) return Result.fail("sort key is not a valid event sort key")
  const { key, seq } = SortKey.decode(sortKey)
  const op = item[Attr.op]?.S as EventOp | undefined
  const timestamp = clearNumber(item, Attr.timestamp)
  const ttl = clearNumber(item, Attr.ttl)
  return Result.succeed({
    key,
    seq,
    op: op !== undefined && eventOps.includes(op) ? op : undefined,
    expires: clearNumber(item, Attr.expires),
    timestamp: timestamp !== undefined && Number.isFinite(timestamp) ? timestamp : undefined,
    retainedUntil: ttl !== undefined && Number.isFinite(ttl) ? ttl * 1000 : undefined,
    item
  })
}

/** DynamoDB's item size limit. */
export const itemLimitBytes = 400 * 1024

/** What an event's value (or each part of a value stored in chunks) is bound to. */
export const bindingOf = (location: Location, event: Omit<Event, "value">): ValueCipher.ValueBinding => ({
  table: boundName(location),
  namespace: location.namespace,
  key: event.key,
  seq: event.seq,
  eventId: event.revision,
  op: event.op,
  expires: event.expires,
  valueRevision: event.valueRevision,
  timestamp: event.timestamp
})

/** Whether an item is a relocated copy of an event (see `Attr.moved`): its stream record announces nothing new. */
export const isMovedCopy = (item: StoredItem): boolean => attributesOf(item)[Attr.moved]?.BOOL === true

/** The size DynamoDB counts for an item: attribute names plus values (numbers counted generously). */
export const itemSize = (item: AttributeMap): number => {
  let size = 0
  for (const [name, value] of Object.entries(item)) {
    size += Buffer.byteLength(name, "utf8")
    if (value.S !== undefined) size += Buffer.byteLength(value.S, "utf8")
    else if (value.N !== undefined) size += value.N.length + 1
    else if (value.B !== undefined) size += value.B.length
    else size += 1
  }
  return size
}

const attributeNameBytes = Object.values(Attr).reduce((sum, name) => sum + name.length, 0)

/**
 * An upper bound of the size of any event item carrying a value of this many bytes under this key: a value whose
 * bound exceeds the item limit is stored in chunks (see `ValueChunks`), decided before any I/O.
 */
export const maxItemBytes = (
  location: Location,
  key: string,
  valueBytes: number,
  /** For a key stored sealed: the UTF-8 bytes of its stored form; the item then carries `key` encrypted too. */
  storedKeyBytes?: number
): number => {
  const uuid = 36
  const number = 22
  const keyBytes = Buffer.byteLength(key, "utf8")
  const sealed = storedKeyBytes === undefined
    ? 0
    : storedKeyBytes - keyBytes + ValueCipher.overheadBytes(255) + keyBytes
  return attributeNameBytes +
    longestPartitionBytes(location) +
    keyBytes + 9 +
    2 * uuid + 4 * number + "keep-alive".length +
    ValueCipher.overheadBytes(255) + valueBytes + sealed
}

const noValue = new Uint8Array(0)

/**
 * Whether an event item is a tombstone without authentication (no encrypted empty value): written by a version
 * before 0.2, or by hand. Readers take it as a deletion; the worker reports it.
 */
export const isUnauthenticatedTombstone = (stored: StoredItem | undefined): boolean => {
  const item = stored === undefined ? undefined : attributesOf(stored)
  const op = item?.[Attr.op]?.S
  return (op === "delete" || op === "expire") && item?.[Attr.value] === undefined
}

/** The binding part of a large value's manifest: it names the chunk count, so no chunk can be dropped or added. */
export const manifestPart = (chunks: number): string => `manifest ${chunks}`

/** The item for an event, with its value encrypted; `ValueTooLarge` if it would not fit in DynamoDB. */
export const encode = (
  location: Location,
  event: Event
): Effect.Effect<AttributeMap, ValueTooLarge | KeyringError | Throttled | StorageFailure, DataKeys> =>
  itemOf(location, event, event.value ?? noValue, undefined)

/**
 * The item of an event whose value is stored in `chunks` chunk items (see `ValueChunks`): in place of the value it
 * carries the value's manifest, encrypted and bound as the manifest of that many chunks.
 */
export const encodeManifest = (
  location: Location,
  event: Event,
  manifest: Uint8Array,
  chunks: number
): Effect.Effect<AttributeMap, ValueTooLarge | KeyringError | Throttled | StorageFailure, DataKeys> =>
  itemOf(location, event, manifest, chunks)

/**
 * The data key for a ciphertext of `bytes` bytes of the event's scope, or undefined when none is at hand (see
 * `DataKeys.atHandForEncryption`).
 */
type KeyFor = (bytes: number) => DataKey | undefined

/** The item of an event, its value (and sealed key) encrypted under the keys `keyFor` gives; undefined if it gave none. */
const build = (
  location: Location,
  event: Event,
  plaintext: Uint8Array,
  chunks: number | undefined,
  keyFor: KeyFor
): Result.Result<AttributeMap, ValueTooLarge> | undefined => {
  const valueKey = keyFor(plaintext.length)
  if (valueKey === undefined) return undefined
  const item: AttributeMap = {
    [Attr.partition]: { S: keyPartition(location, event.key) },
    [Attr.sort]: { B: SortKey.encode(event.key, event.seq) },
    [Attr.revision]: { S: event.revision },
    [Attr.seq]: { N: String(event.seq) },
    [Attr.op]: { S: event.op },
    [Attr.timestamp]: { N: String(event.timestamp) }
  }
  if (event.expires !== undefined) item[Attr.expires] = { N: String(event.expires) }
  if (event.valueRevision !== undefined) item[Attr.valueRevision] = { S: event.valueRevision }
  // A tombstone carries an encrypted empty value: bound like any value, so it cannot be edited or forged unseen.
  const binding = bindingOf(location, event)
  if (chunks !== undefined) item[Attr.chunks] = { N: String(chunks) }
  item[Attr.value] = {
    B: ValueCipher.encryptWith(
      valueKey,
      plaintext,
      chunks === undefined ? binding : { ...binding, part: manifestPart(chunks) }
    )
  }
  if (event.realKey !== undefined) {
    const realKey = Key.toBytes(event.realKey)
    const keyKey = keyFor(realKey.length)
    if (keyKey === undefined) return undefined
    item[Attr.realKey] = { B: ValueCipher.encryptWith(keyKey, realKey, { ...binding, part: "key" }) }
  }
  const size = itemSize(item)
  if (size > itemLimitBytes) {
    return Result.fail(new ValueTooLarge({ key: event.key, itemBytes: size, limitBytes: itemLimitBytes }))
  }
  return Result.succeed(item)
}

/**
 * The item {@link encode} makes, without an effect, when `dataKeys` has the data keys it needs at hand (judged at
 * the event's own timestamp, its writer's decision a moment ago); undefined when a key must be made first.
 */
export const encodeAtHand = (
  location: Location,
  event: Event,
  dataKeys: DataKeys["Service"]
): Result.Result<AttributeMap, ValueTooLarge> | undefined => {
  const atHand = dataKeys.atHandForEncryption
  if (atHand === undefined) return undefined
  const scope = dataKeys.scopeOf(event.key)
  return build(location, event, event.value ?? noValue, undefined, (bytes) => atHand(scope, bytes, event.timestamp))
}

const itemOf = Effect.fnUntraced(function*(
  location: Location,
  event: Event,
  plaintext: Uint8Array,
  chunks: number | undefined
): Effect.fn.Return<AttributeMap, ValueTooLarge | KeyringError | Throttled | StorageFailure, DataKeys> {
  const dataKeys = yield* DataKeys
  const scope = dataKeys.scopeOf(event.key)
  // The keys in the order `build` asks for them: the value's, then the sealed key's.
  const keys = [yield* dataKeys.forEncryption(scope, plaintext.length)]
  if (event.realKey !== undefined) {
    keys.push(yield* dataKeys.forEncryption(scope, Key.toBytes(event.realKey).length))
  }
  const built = build(location, event, plaintext, chunks, () => keys.shift())!
  return Result.isSuccess(built) ? built.success : yield* built.failure
})

const corrupt = (reason: string) => new StorageFailure({ operation: "decode event", reason })

const numberOf = (item: AttributeMap, name: string): number | undefined => {
  const raw = item[name]?.N
  if (raw === undefined) return undefined
  const value = Number(raw)
  return Number.isSafeInteger(value) ? value : undefined
}

type ParseError = DecryptionFailed | StorageFailure

/** The event an item holds with its value still encrypted, or why the item holds no event; no I/O, no crypto. */
export const parse = (
  item: AttributeMap
): Result.Result<
  { readonly event: Event; readonly ciphertext: Uint8Array | undefined; readonly chunks: number | undefined },
  ParseError
> => {
  const sortKey = item[Attr.sort]?.B
  if (sortKey === undefined) return Result.fail(corrupt("item has no sort key"))
  let decoded: { readonly key: string; readonly seq: number }
  try {
    decoded = SortKey.decode(sortKey)
  } catch {
    return Result.fail(corrupt("sort key is not a valid event sort key"))
  }
  const { key, seq } = decoded
  const failed = (reason: string) => Result.fail(new DecryptionFailed({ key, seq, reason }))
  const revision = item[Attr.revision]?.S
  const op = item[Attr.op]?.S as EventOp | undefined
  const timestamp = numberOf(item, Attr.timestamp)
  const expires = numberOf(item, Attr.expires)
  // The seq attribute duplicates the sort key for stream consumers; a mismatch means the item was edited.
  if (numberOf(item, Attr.seq) !== seq) return failed("seq attribute does not match the sort key")
  if (revision === undefined || op === undefined || !eventOps.includes(op) || timestamp === undefined) {
    return failed("event attributes are missing or malformed")
  }
  if (item[Attr.expires] !== undefined && expires === undefined) return failed("expiry attribute is malformed")
  const event: Event = { key, seq, revision, op, expires, timestamp, valueRevision: item[Attr.valueRevision]?.S }
  const ciphertext = item[Attr.value]?.B
  const hasValue = op === "put" || op === "keep-alive"
  if (hasValue && ciphertext === undefined) return failed(`a ${op} event must carry a value`)
  const chunks = numberOf(item, Attr.chunks)
  if (item[Attr.chunks] !== undefined && (!hasValue || chunks === undefined || chunks < 1)) {
    return failed("chunk count attribute is malformed")
  }
  return Result.succeed({ event, ciphertext, chunks })
}

/** Failures of decoding an event. */
export type DecodeError = DecryptionFailed | Shredded | KeyringError | Throttled | StorageFailure

/**
 * Reads the value of an event stored in chunks, given its decrypted manifest and chunk count (see `ValueChunks`).
 * Only the event table can: it reads the chunk items. Undefined when the reader left the chunks unread, having only
 * checked the manifest: the event then comes without its value.
 */
export type Assemble = (
  event: Event,
  manifest: Uint8Array,
  chunks: number
) => Effect.Effect<Uint8Array | undefined, DecodeError, DataKeys>

/** How many chunk items hold an event item's value; undefined for a value held whole (or no event item). */
export const chunkCount = (stored: StoredItem): number | undefined => {
  const raw = attributesOf(stored)[Attr.chunks]?.N
  return raw === undefined ? undefined : Number(raw)
}

/**
 * The event an item holds, with its value decrypted. A structurally broken
 * item is a `StorageFailure`; one that does not authenticate is `DecryptionFailed`. A value stored in chunks
 * needs `assemble`.
 */
export const decode = (
  location: Location,
  stored: StoredItem,
  options?: { readonly tolerateShredded?: boolean; readonly assemble?: Assemble | undefined }
): Effect.Effect<Event, DecodeError, DataKeys> => {
  // Not a generator: range reads decode every item they return, so everything but the data key is synchronous.
  const parsed = parse(attributesOf(stored))
  if (Result.isFailure(parsed)) return Effect.fail(parsed.failure)
  const { chunks, ciphertext, event } = parsed.success
  const sealed = attributesOf(stored)[Attr.realKey]?.B
  const decoded = decodeValue(location, event, ciphertext, chunks, options)
  return sealed === undefined ? decoded : Effect.flatMap(decoded, (event) => withRealKey(location, event, sealed))
}

/**
 * A sealed key's event with its real key decrypted; under a shredded data key it stays sealed, which is the point
 * of shredding it.
 */
const withRealKey = (
  location: Location,
  event: Event,
  ciphertext: Uint8Array
): Effect.Effect<Event, DecodeError, DataKeys> =>
  event.shredded !== undefined ? Effect.succeed(event) : ValueCipher.decrypt(ciphertext, {
    ...bindingOf(location, event),
    part: "key"
  }).pipe(
    Effect.flatMap((plaintext) => {
      try {
        return Effect.succeed({ ...event, realKey: Key.fromBytes(plaintext) })
      } catch {
        return Effect.fail(
          new DecryptionFailed({ key: event.key, seq: event.seq, reason: "the real key is not valid UTF-8" })
        )
      }
    }),
    Effect.catchTag("Shredded", () => Effect.succeed(event))
  )

/**
 * The event with its decrypted value held whole; for a tombstone, its authentication, which must be empty (a
 * value held in chunks is not for this: its plaintext is the manifest).
 */
export const withPlaintext = (event: Event, plaintext: Uint8Array): Result.Result<Event, DecryptionFailed> =>
  event.op !== "delete" && event.op !== "expire"
    ? Result.succeed({ ...event, value: plaintext })
    : plaintext.length === 0
    ? Result.succeed(event)
    : Result.fail(
      new DecryptionFailed({
        key: event.key,
        seq: event.seq,
        reason: `a ${event.op} event's authentication holds a value`
      })
    )

const decodeValue = (
  location: Location,
  event: Event,
  ciphertext: Uint8Array | undefined,
  chunks: number | undefined,
  options: { readonly tolerateShredded?: boolean; readonly assemble?: Assemble | undefined } | undefined
): Effect.Effect<Event, DecodeError, DataKeys> => {
  // A tombstone without authentication: written before 0.2, or forged (the worker reports it, see TamperWatch).
  if (ciphertext === undefined) return Effect.succeed(event)
  const decrypted = ValueCipher.decrypt(ciphertext, bindingOf(location, event))
  if (event.op === "delete" || event.op === "expire") {
    // A tombstone's authentication is an empty value; under a shredded data key it cannot be checked, and guards
    // nothing readable.
    return Effect.matchEffect(decrypted, {
      onSuccess: (plaintext) => Effect.fromResult(withPlaintext(event, plaintext)),
      onFailure: (error) =>
        error._tag === "Shredded" ? Effect.succeed({ ...event, shredded: { scope: error.scope } }) : Effect.fail(error)
    })
  }
  const value = chunks === undefined
    ? Effect.map(decrypted, (plaintext): Event => ({ ...event, value: plaintext }))
    : assembled(location, event, ciphertext, chunks, options?.assemble)
  return options?.tolerateShredded
    ? Effect.catchTag(value, "Shredded", (error) => Effect.succeed({ ...event, shredded: { scope: error.scope } }))
    : value
}

const assembled = (
  location: Location,
  event: Event,
  manifest: Uint8Array,
  chunks: number,
  assemble: Assemble | undefined
): Effect.Effect<Event, DecodeError, DataKeys> =>
  assemble === undefined
    ? Effect.fail(
      corrupt(`the value of ${event.key} at seq ${event.seq} is stored in chunks: read it through the table`)
    )
    : ValueCipher.decrypt(manifest, { ...bindingOf(location, event), part: manifestPart(chunks) }).pipe(
      Effect.flatMap((plaintext) => assemble(event, plaintext, chunks)),
      Effect.map((value): Event => (value === undefined ? event : { ...event, value }))
    )
