/**
 * The items a backup holds, as DynamoDB stores them: a namespace's live events, its history area, its graves and
 * its wrapped data keys, each read from its partition and written back into another table or namespace. Values
 * stay as stored (ciphertexts, and data keys wrapped by the keyring); an item moved to another namespace or store
 * id is re-encrypted here, since values and data keys are bound to both (see `ValueCipher` and `DataKeys`).
 */
import { BatchWriteItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, WriteRequest } from "@aws-sdk/client-dynamodb"
import { Effect, Result, Schedule, Stream } from "effect"
import { StorageFailure } from "../../domain/Errors.ts"
import type { DecryptionFailed, Shredded, Throttled, ValueTooLarge } from "../../domain/Errors.ts"
import * as Key from "../../domain/Key.ts"
import type { Layout } from "../../domain/Partitioning.ts"
import * as SortKey from "../../domain/SortKey.ts"
import { contextOf, DataKeyNotFound, DataKeys, DataKeyShredded } from "../crypto/DataKeys.ts"
import type { DataKey } from "../crypto/DataKeys.ts"
import * as DataKeyStore from "../crypto/DataKeyStore.ts"
import { Keyring } from "../crypto/Keyring.ts"
import type { KeyringError } from "../crypto/Keyring.ts"
import { sealingKeyId } from "../crypto/KeySealer.ts"
import * as ValueCipher from "../crypto/ValueCipher.ts"
import type { AttributeMap } from "../Dynamo.ts"
import { Dynamo, queryPages } from "../Dynamo.ts"
import * as EventRecord from "../EventRecord.ts"
import type { Location, StoredItem } from "../EventRecord.ts"
import * as GraveRecord from "../GraveRecord.ts"
import { isFreedMarker } from "../HistoryRecord.ts"
import { areaPartition, keyArea, keyPartition, livePartitions } from "../PartitionKeys.ts"
import { ChunkAttr } from "../ValueChunks.ts"

const { Attr, attributesOf } = EventRecord

/** What an item is to the store; the order is the order a backup reads them in (see `roles`). */
export type Role = "event" | "history" | "grave" | "chunk" | "data-key"

/**
 * The order a backup reads partitions in, so a backup taken while the store runs misses nothing: compaction
 * copies an event to history before removing it from the live range, and files a tombstone in its grave before
 * removing it, so reading the live range first can only see an item twice (a state the store reads correctly),
 * never lose one. The chunks of large values come after the events: a write stores its chunks before its event, so
 * every event already read has its chunks there. Data keys come last: every key an item already read names was
 * stored before it.
 */
export const roles: ReadonlyArray<Role> = ["event", "history", "grave", "chunk", "data-key"]

const areaOf = { history: "history", grave: "graves", chunk: "chunks" } as const

/**
 * The partitions of a role in a namespace: one per live partition of its layout (see `PartitionKeys`), the default
 * partition's first; the data keys' one.
 */
export const partitionsOf = (location: Location, role: Role): ReadonlyArray<string> =>
  role === "data-key"
    ? [DataKeyStore.partitionOf(location.namespace)]
    : livePartitions(location).map((live) => role === "event" ? live : areaPartition(live, areaOf[role]))

/** The stored key an item of a role belongs to (a chunk names its event's sort key, a grave is filed under it). */
const keyOfItem = (item: AttributeMap, role: Exclude<Role, "data-key">): string => {
  if (role === "grave") {
    const filed = item[Attr.sort]?.B ?? new Uint8Array([0])
    return Key.fromBytes(filed.subarray(0, Math.max(0, filed.length - 1)))
  }
  const sortKey = role === "chunk" ? item[ChunkAttr.event]?.B : item[Attr.sort]?.B
  return SortKey.decode(sortKey ?? new Uint8Array(9)).key
}

/** The partition an item of a role takes at a location: its key's, by the location's layout. */
export const partitionOf = (location: Location, role: Role, item: StoredItem): string => {
  if (role === "data-key") return DataKeyStore.partitionOf(location.namespace)
  const key = keyOfItem(attributesOf(item), role)
  return role === "event" ? keyPartition(location, key) : keyArea(location, key, areaOf[role])
}

/** Every item of some partitions, consistently read, page by page, one partition after the other. */
const readPartitions = (
  location: Location,
  partitions: ReadonlyArray<string>
): Stream.Stream<StoredItem, Throttled | StorageFailure, Dynamo> =>
  Stream.fromIterable(partitions).pipe(
    Stream.flatMap((partition) =>
      queryPages({
        TableName: location.table,
        KeyConditionExpression: "#pk = :pk",
        ExpressionAttributeNames: { "#pk": Attr.partition },
        ExpressionAttributeValues: { ":pk": { S: partition } },
        ConsistentRead: true
      })
    ),
    Stream.flatMap((page) => Stream.fromIterable(page.Items ?? []))
  )

/**
 * Every item of a role's partitions, consistently read, page by page, one partition after the other. While a
 * layout migration moves keys from the layout `from` to the location's (see `PartitionMigration`), first every item
 * still at its old place of a key that moves, then every item at its place in the location's layout: a move copies
 * before it removes, so a key moving meanwhile is read at one place or both (the same events), never at neither.
 */
export const read = (
  location: Location,
  role: Role,
  from?: Layout | undefined
): Stream.Stream<StoredItem, Throttled | StorageFailure, Dynamo> => {
  if (from === undefined || role === "data-key") return readPartitions(location, partitionsOf(location, role))
  const old: Location = { ...location, partitions: from }
  const placedAt = (at: Location) => (item: StoredItem) =>
    attributesOf(item)[Attr.partition]?.S === partitionOf(at, role, item)
  return Stream.concat(
    readPartitions(location, partitionsOf(old, role)).pipe(
      Stream.filter((item) => placedAt(old)(item) && !placedAt(location)(item))
    ),
    readPartitions(location, partitionsOf(location, role)).pipe(Stream.filter(placedAt(location)))
  )
}

/** Whether a namespace holds any item of any role (a restore refuses to mix with existing data). */
export const isEmpty = (location: Location): Effect.Effect<boolean, Throttled | StorageFailure, Dynamo> =>
  Effect.forEach(
    roles.flatMap((role) => partitionsOf(location, role)),
    (partition) =>
      Dynamo.use((dynamo) =>
        dynamo.call("Query", (client, abortSignal) =>
          client.send(
            new QueryCommand({
              TableName: location.table,
              KeyConditionExpression: "#pk = :pk",
              ExpressionAttributeNames: { "#pk": Attr.partition },
              ExpressionAttributeValues: { ":pk": { S: partition } },
              Limit: 1
            }),
            { abortSignal }
          ))
      )
  ).pipe(Effect.map((pages) => pages.every((page) => (page.Items ?? []).length === 0)))

/** An attribute value as JSON: DynamoDB's own JSON form, binary values in base64. */
export type JsonValue =
  | { readonly S: string }
  | { readonly N: string }
  | { readonly B: string }
  | { readonly BOOL: boolean }
  | { readonly NULL: true }
  | { readonly L: ReadonlyArray<JsonValue> }
  | { readonly M: Readonly<Record<string, JsonValue>> }
  | { readonly SS: ReadonlyArray<string> }
  | { readonly NS: ReadonlyArray<string> }
  | { readonly BS: ReadonlyArray<string> }

/** An item as JSON. */
export type JsonItem = Readonly<Record<string, JsonValue>>

const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")
const fromBase64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"))

const valueToJson = (value: AttributeValue): JsonValue => {
  if (value.S !== undefined) return { S: value.S }
  if (value.N !== undefined) return { N: value.N }
  if (value.B !== undefined) return { B: base64(value.B) }
  if (value.BOOL !== undefined) return { BOOL: value.BOOL }
  if (value.NULL !== undefined) return { NULL: true }
  if (value.L !== undefined) return { L: value.L.map(valueToJson) }
  if (value.M !== undefined) return { M: mapToJson(value.M) }
  if (value.SS !== undefined) return { SS: value.SS }
  if (value.NS !== undefined) return { NS: value.NS }
  if (value.BS !== undefined) return { BS: value.BS.map(base64) }
  throw new TypeError("unsupported attribute value")
}

const mapToJson = (item: AttributeMap): JsonItem =>
  Object.fromEntries(Object.entries(item).map(([name, value]) => [name, valueToJson(value)]))

/** An item as JSON. */
export const toJson = (item: StoredItem): JsonItem => mapToJson(attributesOf(item))

const isBase64 = (text: unknown): text is string => typeof text === "string" && /^[A-Za-z0-9+/]*={0,2}$/.test(text)
const isNumber = (text: unknown): text is string =>
  typeof text === "string" && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text)

const valueFromJson = (json: unknown, path: string): Result.Result<AttributeValue, string> => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return Result.fail(`${path} is not a value`)
  const entries = Object.entries(json)
  if (entries.length !== 1) return Result.fail(`${path} must have exactly one type`)
  const [type, raw] = entries[0]!
  const all = <A>(
    items: unknown,
    one: (item: unknown, at: string) => Result.Result<A, string>
  ): Result.Result<Array<A>, string> => {
    if (!Array.isArray(items)) return Result.fail(`${path}.${type} is not a list`)
    const out: Array<A> = []
    for (const [index, item] of items.entries()) {
      const decoded = one(item, `${path}.${type}[${index}]`)
      if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
      out.push(decoded.success)
    }
    return Result.succeed(out)
  }
  const text =
    (check: (value: unknown) => boolean, what: string) => (item: unknown, at: string): Result.Result<string, string> =>
      check(item) ? Result.succeed(item as string) : Result.fail(`${at} is not ${what}`)
  switch (type) {
    case "S":
      return typeof raw === "string" ? Result.succeed({ S: raw }) : Result.fail(`${path}.S is not a string`)
    case "N":
      return isNumber(raw) ? Result.succeed({ N: raw }) : Result.fail(`${path}.N is not a number`)
    case "B":
      return isBase64(raw) ? Result.succeed({ B: fromBase64(raw) }) : Result.fail(`${path}.B is not base64`)
    case "BOOL":
      return typeof raw === "boolean" ? Result.succeed({ BOOL: raw }) : Result.fail(`${path}.BOOL is not a boolean`)
    case "NULL":
      return raw === true ? Result.succeed({ NULL: true }) : Result.fail(`${path}.NULL must be true`)
    case "L":
      return Result.map(all(raw, valueFromJson), (L) => ({ L }))
    case "M":
      return Result.map(fromJsonAt(raw, `${path}.M`), (M) => ({ M }))
    case "SS":
      return Result.map(all(raw, text((item) => typeof item === "string", "a string")), (SS) => ({ SS }))
    case "NS":
      return Result.map(all(raw, text(isNumber, "a number")), (NS) => ({ NS }))
    case "BS":
      return Result.map(all(raw, text(isBase64, "base64")), (BS) => ({ BS: BS.map(fromBase64) }))
    default:
      return Result.fail(`${path} has unknown type ${type}`)
  }
}

const fromJsonAt = (json: unknown, path: string): Result.Result<AttributeMap, string> => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return Result.fail(`${path} is not an item`)
  const item: AttributeMap = {}
  for (const [name, value] of Object.entries(json)) {
    const decoded = valueFromJson(value, `${path}.${name}`)
    if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
    item[name] = decoded.success
  }
  return Result.succeed(item)
}

/**
 * An item from its JSON form, or what is wrong with it. Only items a store could hold pass: a partition key
 * (string) and a binary sort key.
 */
export const fromJson = (json: unknown): Result.Result<StoredItem, string> =>
  Result.flatMap(
    fromJsonAt(json, "item"),
    (item) =>
      item[Attr.partition]?.S === undefined || item[Attr.sort]?.B === undefined
        ? Result.fail(`item has no ${Attr.partition} string or no ${Attr.sort} binary key`)
        : Result.succeed(item)
  )

/** The item with its partition key moved to the role's partition of another namespace (by its key, for the layout). */
export const rehome = (item: StoredItem, role: Role, target: Location): StoredItem => {
  const moved: AttributeMap = { ...attributesOf(item), [Attr.partition]: { S: partitionOf(target, role, item) } }
  return moved
}

/** A data key item's id, scope and state, for deciding how to restore it. */
export const dataKeyOf = (stored: StoredItem) => {
  const item = attributesOf(stored)
  return {
    id: Buffer.from(item[Attr.sort]?.B ?? new Uint8Array()).toString("utf8"),
    scope: item.scope?.S ?? "",
    state: item.state?.S,
    wrapped: (item.wrapped?.L ?? []).map((entry) => ({
      provider: entry.M?.p?.S ?? "",
      keyId: entry.M?.k?.S ?? "",
      ciphertext: entry.M?.c?.B ?? new Uint8Array()
    }))
  }
}

/** Whether a data key item is a named one (views' blind index keys, `named:<id>` scopes). */
export const isNamedDataKey = (item: StoredItem): boolean => dataKeyOf(item).scope.startsWith("named:")

/**
 * Whether a data key item is the key sealing key (see `KeySealer`): a named key, but one that cannot be made anew,
 * since the stored keys of sealed prefixes are its MACs.
 */
export const isSealingKey = (item: StoredItem): boolean =>
  dataKeyOf(item).id === sealingKeyId && dataKeyOf(item).scope === `named:${sealingKeyId}`

/**
 * A live named data key carried to another location: unwrapped with the backup's keys and wrapped again by the
 * keyring under the target's encryption context, with its id kept.
 */
export const carryNamedKey = (item: StoredItem, source: BackupKeys, target: Location) =>
  Effect.gen(function*() {
    const record = dataKeyOf(item)
    const key = yield* source.keys.forDecryption(record.id).pipe(
      Effect.catchTag(["DataKeyNotFound", "DataKeyShredded"], (error) =>
        Effect.fail(new StorageFailure({ operation: "carry data key", reason: `${record.id}: ${error._tag}` })))
    )
    const wrapped = yield* (yield* Keyring).wrap(key.material, contextOf(target, record.id, record.scope))
    yield* DataKeyStore.put(target, {
      id: record.id,
      scope: record.scope,
      created: Date.now(),
      state: "active",
      wrapped
    })
  })

/** Whether a data key item was shredded (its wrapped copies destroyed). */
export const isShreddedDataKey = (item: StoredItem): boolean => dataKeyOf(item).state === "shredded"

const batchSize = 25

/**
 * Writes items (plain puts) in batches of 25, sending unprocessed ones again with backoff. Writing an item twice
 * writes the same bytes, so a restore that stopped half-way can run again.
 */
export const putAll = (table: string, items: ReadonlyArray<StoredItem>) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    for (let start = 0; start < items.length; start += batchSize) {
      // One put per primary key (the last): a backup taken during a layout migration holds a key moving meanwhile
      // at both places, which a restore files at the same one, and a batch refuses a key twice.
      const byKey = new Map<string, AttributeMap>()
      for (const item of items.slice(start, start + batchSize)) {
        const attributes = attributesOf(item)
        const sort = Buffer.from(attributes[Attr.sort]?.B ?? new Uint8Array()).toString("base64")
        byKey.set(`${attributes[Attr.partition]?.S ?? ""}\u0000${sort}`, attributes)
      }
      let pending: Array<WriteRequest> = [...byKey.values()].map((Item) => ({ PutRequest: { Item } }))
      yield* Effect.gen(function*() {
        const output = yield* dynamo.call("BatchWriteItem", (client, abortSignal) =>
          client.send(new BatchWriteItemCommand({ RequestItems: { [table]: pending } }), { abortSignal }))
        pending = output.UnprocessedItems?.[table] ?? []
        if (pending.length > 0) {
          return yield* new StorageFailure({ operation: "BatchWriteItem", reason: `${pending.length} unprocessed` })
        }
      }).pipe(
        Effect.retry({
          while: (error) =>
            error._tag === "StorageFailure" && error.reason.endsWith("unprocessed"),
          schedule: Schedule.exponential("50 millis").pipe(Schedule.jittered, Schedule.upTo({ times: 10 }))
        })
      )
    }
  })

const readOnly = (operation: string) =>
  Effect.fail(new StorageFailure({ operation, reason: "the data keys of a backup only decrypt what it holds" }))

/** The data keys of a backup, to decrypt its values. */
export interface BackupKeys {
  /** A `DataKeys` service that only decrypts (it makes no keys: the restored store makes its own). */
  readonly keys: DataKeys["Service"]
  /** The shred scope of a backup's data key, so a re-encrypted value keeps the scope it had. */
  readonly scopeOf: (dataKeyId: string) => string | undefined
}

/**
 * The data keys of a backup: each key is unwrapped by the keyring with the context of the store it came from; a
 * shredded one stays shredded.
 */
export const backupDataKeys = (source: Location, items: ReadonlyArray<StoredItem>) =>
  Effect.gen(function*() {
    const keyring = yield* Keyring
    const records = new Map(items.map((item) => [dataKeyOf(item).id, dataKeyOf(item)]))
    const unwrapped = new Map<string, DataKey>()
    const forDecryption = (id: string) =>
      Effect.gen(function*() {
        const known = unwrapped.get(id)
        if (known !== undefined) return known
        const record = records.get(id)
        if (record === undefined) return yield* new DataKeyNotFound({ dataKey: id })
        if (record.state === "shredded") return yield* new DataKeyShredded({ dataKey: id, scope: record.scope })
        const material = yield* keyring.unwrap(record.wrapped, contextOf(source, id, record.scope))
        const key = { id, material }
        unwrapped.set(id, key)
        return key
      })
    const keys = DataKeys.of({
      scopeOf: () => "",
      forDecryption,
      named: forDecryption,
      forEncryption: () => readOnly("forEncryption"),
      rewrap: () => readOnly("rewrap"),
      shred: () => readOnly("shred")
    })
    return { keys, scopeOf: (id: string) => records.get(id)?.scope } satisfies BackupKeys
  })

/**
 * An event or history item re-encrypted for another location: decrypted with the backup's data keys and
 * encrypted again with the target's (`DataKeys` in context) in the shred scope it had, every clear attribute kept.
 * A value whose data key was shredded cannot be decrypted and stays as it was: it reads as shredded there too. A
 * freed-seq marker holds no event: it moves as it is.
 */
export const reencrypt = (
  item: StoredItem,
  role: "event" | "history" | "grave",
  source: { readonly location: Location; readonly keys: BackupKeys },
  target: Location
): Effect.Effect<
  StoredItem,
  DecryptionFailed | Shredded | ValueTooLarge | KeyringError | Throttled | StorageFailure,
  DataKeys
> =>
  Effect.gen(function*() {
    if (role === "grave") {
      // A grave is its tombstone filed under the key: the tombstone's authentication is bound to the location too.
      const tombstone = GraveRecord.toTombstone(source.location, attributesOf(item))
      const moved = yield* reencrypt(tombstone, "event", source, target)
      const { key } = SortKey.decode(tombstone[Attr.sort]?.B ?? new Uint8Array())
      return GraveRecord.fromTombstone(target, key, moved)
    }
    if (isFreedMarker(item)) return rehome(item, role, target)
    const event = yield* EventRecord.decode(source.location, item, { tolerateShredded: true }).pipe(
      Effect.provideService(DataKeys, source.keys.keys)
    )
    const attributes = attributesOf(item)
    // A shredded value, or a tombstone without authentication (before 0.2, or forged), moves as it is: encrypting it
    // anew would vouch for what nobody can check.
    if (event.shredded !== undefined || attributes[Attr.value] === undefined) return rehome(item, role, target)
    const keyId = ValueCipher.keyIdOf(attributes[Attr.value]?.B ?? new Uint8Array())
    const scope = Result.isSuccess(keyId) ? source.keys.scopeOf(keyId.success) : undefined
    const targetKeys = yield* DataKeys
    const encoded = yield* EventRecord.encode(target, event).pipe(
      Effect.provideService(
        DataKeys,
        scope === undefined ? targetKeys : DataKeys.of({ ...targetKeys, scopeOf: () => scope })
      )
    )
    const ttl = attributes[Attr.ttl]
    return { ...rehome(encoded, role, target), ...(ttl === undefined ? {} : { [Attr.ttl]: ttl }) }
  })
