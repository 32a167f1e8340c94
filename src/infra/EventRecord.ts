/**
 * The DynamoDB item of an event, and back. The value is encrypted here, bound
 * to everything else the item says, so the table never holds plaintext and an
 * item whose attributes were edited or swapped fails to decrypt.
 */
import { Effect } from "effect"
import { DecryptionFailed, StorageFailure, ValueTooLarge } from "../domain/Errors.ts"
import type { Throttled } from "../domain/Errors.ts"
import { Shredded } from "../domain/Errors.ts"
import type { Event, EventOp } from "../domain/Event.ts"
import { eventOps } from "../domain/Event.ts"
import * as SortKey from "../domain/SortKey.ts"
import type { KeyringError } from "./crypto/Keyring.ts"
import type { DataKeys } from "./crypto/DataKeys.ts"
import { boundName } from "./crypto/DataKeyStore.ts"
import * as ValueCipher from "./crypto/ValueCipher.ts"
import type { AttributeMap } from "./Dynamo.ts"

/** Attribute names of an event item. Short, because they count against the 400 KB item limit. */
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
  ttl: "ttl"
} as const

/** Where events live: the table and the namespace (partition) within it, and the store id values are bound to. */
export interface Location {
  readonly table: string
  readonly namespace: string
  /** See `DataKeyLocation.storeId`: the table name unless the store's items moved to another table. */
  readonly storeId?: string | undefined
}

/** DynamoDB's item size limit. */
export const itemLimitBytes = 400 * 1024

const bindingOf = (location: Location, event: Omit<Event, "value">) => ({
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

/**
 * An upper bound of the size of any event item carrying a value of this many
 * bytes under this key, so oversized values are refused before any I/O.
 */
export const maxItemBytes = (location: Location, key: string, valueBytes: number): number => {
  const names = Object.values(Attr).reduce((sum, name) => sum + name.length, 0)
  const uuid = 36
  const number = 22
  return names +
    Buffer.byteLength(location.namespace, "utf8") +
    Buffer.byteLength(key, "utf8") + 9 +
    2 * uuid + 4 * number + "keep-alive".length +
    ValueCipher.overheadBytes(255) + valueBytes
}

/** The item for an event, with its value encrypted; `ValueTooLarge` if it would not fit in DynamoDB. */
export const encode = Effect.fnUntraced(function*(
  location: Location,
  event: Event
): Effect.fn.Return<AttributeMap, ValueTooLarge | KeyringError | Throttled | StorageFailure, DataKeys> {
  const item: AttributeMap = {
    [Attr.partition]: { S: location.namespace },
    [Attr.sort]: { B: SortKey.encode(event.key, event.seq) },
    [Attr.revision]: { S: event.revision },
    [Attr.seq]: { N: String(event.seq) },
    [Attr.op]: { S: event.op },
    [Attr.timestamp]: { N: String(event.timestamp) }
  }
  if (event.expires !== undefined) item[Attr.expires] = { N: String(event.expires) }
  if (event.valueRevision !== undefined) item[Attr.valueRevision] = { S: event.valueRevision }
  if (event.value !== undefined) {
    item[Attr.value] = { B: yield* ValueCipher.encrypt(event.value, bindingOf(location, event)) }
  }
  const size = itemSize(item)
  if (size > itemLimitBytes) {
    return yield* new ValueTooLarge({ key: event.key, itemBytes: size, limitBytes: itemLimitBytes })
  }
  return item
})

const corrupt = (reason: string) => new StorageFailure({ operation: "decode event", reason })

const numberOf = (item: AttributeMap, name: string): number | undefined => {
  const raw = item[name]?.N
  if (raw === undefined) return undefined
  const value = Number(raw)
  return Number.isSafeInteger(value) ? value : undefined
}

/**
 * The event an item holds, with its value decrypted. A structurally broken
 * item is a `StorageFailure`; one that does not authenticate is `DecryptionFailed`.
 */
export const decode = Effect.fnUntraced(function*(
  location: Location,
  item: AttributeMap,
  options?: { readonly tolerateShredded?: boolean }
): Effect.fn.Return<Event, DecryptionFailed | Shredded | KeyringError | Throttled | StorageFailure, DataKeys> {
  const sortKey = item[Attr.sort]?.B
  if (sortKey === undefined) return yield* corrupt("item has no sort key")
  const { key, seq } = yield* Effect.try({
    try: () => SortKey.decode(sortKey),
    catch: () => corrupt("sort key is not a valid event sort key")
  })
  const revision = item[Attr.revision]?.S
  const op = item[Attr.op]?.S as EventOp | undefined
  const timestamp = numberOf(item, Attr.timestamp)
  const expires = numberOf(item, Attr.expires)
  // The seq attribute duplicates the sort key for stream consumers; a mismatch means the item was edited.
  if (numberOf(item, Attr.seq) !== seq) return yield* new DecryptionFailed({ key, seq, reason: "seq attribute does not match the sort key" })
  if (revision === undefined || op === undefined || !eventOps.includes(op) || timestamp === undefined) {
    return yield* new DecryptionFailed({ key, seq, reason: "event attributes are missing or malformed" })
  }
  if (item[Attr.expires] !== undefined && expires === undefined) {
    return yield* new DecryptionFailed({ key, seq, reason: "expiry attribute is malformed" })
  }
  const event: Event = { key, seq, revision, op, expires, timestamp, valueRevision: item[Attr.valueRevision]?.S }
  const ciphertext = item[Attr.value]?.B
  const hasValue = op === "put" || op === "keep-alive"
  if (hasValue !== (ciphertext !== undefined)) {
    return yield* new DecryptionFailed({ key, seq, reason: `a ${op} event ${hasValue ? "must" : "must not"} carry a value` })
  }
  if (ciphertext === undefined) return event
  const value = yield* ValueCipher.decrypt(ciphertext, bindingOf(location, event)).pipe(
    Effect.map((plaintext): Uint8Array | Shredded => plaintext),
    Effect.catchTag("Shredded", (error) => (options?.tolerateShredded ? Effect.succeed(error) : Effect.fail(error)))
  )
  return value instanceof Uint8Array ? { ...event, value } : { ...event, shredded: { scope: value.scope } }
})
