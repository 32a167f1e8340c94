/**
 * What one DynamoDB request did to the table's partitions: for each partition-key value it touched, whether it read
 * or wrote, which of the store's keys (one key, a range of sort keys, or none the store names) and how many capacity
 * units it consumed there. Built from the request's input and the `ConsumedCapacity` DynamoDB returned, so the
 * partition model can replay the store's real request pattern. Pure: the SDK middleware that feeds it is `Trace`.
 *
 * DynamoDB reports consumed capacity per table, not per item. A request that touches one item (or queries one
 * partition-key value) is exact. A transaction or batch is split over its items the way DynamoDB charges them
 * (read-write-operations.html: each item of a `BatchWriteItem` is billed as a single write; transaction-apis.html:
 * each item of a transaction costs two units per 1 KB written): items whose size the request carries (a `Put`)
 * get their billed units, and the rest of the table's reported units (deletes, updates and condition checks of
 * items whose stored size only DynamoDB knows) is shared equally among the others. The units of a request always
 * add up to what DynamoDB reported.
 */
import * as Key from "../../src/domain/Key.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import type { Attribute, Item } from "./ItemSize.ts"
import { itemBytes, writeUnits } from "./ItemSize.ts"

/** Which of the store's keys a touch concerns. */
export type KeyRef =
  | { readonly _tag: "Key"; readonly key: string }
  /** A range read between two sort keys (inclusive), as bytes: what a `Query` with sort-key bounds covers. */
  | { readonly _tag: "Range"; readonly lower: Uint8Array; readonly upper: Uint8Array }
  /** A read of a whole partition-key value (a `Query` on the partition key alone). */
  | { readonly _tag: "All" }
  /** Items the store does not file by key (data keys, leases, chunks looked up by digest). */
  | { readonly _tag: "None" }

/** Reads and writes are throttled apart (throttling-key-range-limit-exceeded-mitigation.html). */
export type Kind = "read" | "write"

/** One partition-key value's part of a request. */
export interface Touch {
  readonly table: string
  readonly pk: string
  readonly key: KeyRef
  readonly kind: Kind
  readonly units: number
  /** For reads: strongly consistent (1 unit per 4 KB) or not (half); what a split read costs at least. */
  readonly consistent: boolean
}

/** One request as captured: when it was sent (ms, any fixed origin), its operation and what it touched. */
export interface TracedRequest {
  readonly at: number
  readonly operation: string
  readonly touches: ReadonlyArray<Touch>
}

/** The key attributes of a table's items: dynastate's tables use `pk`/`sk`, the peer `HashKey`/`FullPath`. */
export interface KeySchema {
  readonly partition: string
  readonly sort: string
}

/** dynastate's key attributes (the event table and the lease table). */
export const storeSchema: KeySchema = { partition: "pk", sort: "sk" }

/** One entry of `ConsumedCapacity`. */
export interface Consumed {
  readonly TableName?: string | undefined
  readonly CapacityUnits?: number | undefined
}

type Write = { readonly TableName?: string; readonly Item?: Item; readonly Key?: Item }

/** The parts of a request input read here. */
export interface Input {
  readonly TableName?: string
  readonly Item?: Item
  readonly Key?: Item
  readonly ConsistentRead?: boolean
  readonly KeyConditionExpression?: string
  readonly ExpressionAttributeNames?: Readonly<Record<string, string>>
  readonly ExpressionAttributeValues?: Readonly<Record<string, Attribute>>
  readonly TransactItems?: ReadonlyArray<Readonly<Record<string, Write | undefined>>>
  readonly RequestItems?: Readonly<Record<string, BatchWrites | BatchGets>>
}

type BatchWrites = ReadonlyArray<
  { readonly PutRequest?: { readonly Item: Item }; readonly DeleteRequest?: { readonly Key: Item } }
>
type BatchGets = { readonly Keys?: ReadonlyArray<Item>; readonly ConsistentRead?: boolean }

// `Array.isArray` does not narrow a readonly array out of a union.
const isWrites = (requests: BatchWrites | BatchGets): requests is BatchWrites => Array.isArray(requests)

const textOf = (attribute: Attribute | undefined): string | undefined =>
  attribute?.S ?? attribute?.N ?? (attribute?.B === undefined ? undefined : Buffer.from(attribute.B).toString("hex"))

const bytesOf = (attribute: Attribute | undefined): Uint8Array | undefined =>
  attribute?.B ?? (attribute?.S === undefined ? undefined : Key.toBytes(attribute.S))

/**
 * The store key a sort key names: an event's (`key ‖ 0x00 ‖ seq`, live or in the history area), a grave's
 * (`key ‖ 0x00`), or a string sort key itself (the peer's full path); undefined for anything else.
 */
export const keyOfSort = (sort: Attribute | undefined): string | undefined => {
  if (sort?.S !== undefined) return sort.S
  const bytes = sort?.B
  if (bytes === undefined) return undefined
  try {
    if (bytes.length >= Key.sortKeySuffixBytes && bytes[bytes.length - Key.sortKeySuffixBytes] === 0) {
      const { key } = SortKey.decode(bytes)
      if (!key.includes("\u0000")) return key
    }
    if (bytes.length >= 1 && bytes[bytes.length - 1] === 0) {
      const key = Key.fromBytes(bytes.subarray(0, bytes.length - 1))
      if (!key.includes("\u0000")) return key
    }
  } catch {
    // Not UTF-8: a digest or an id, not a key.
  }
  return undefined
}

const keyRefOf = (item: Item | undefined, schema: KeySchema): KeyRef => {
  // A chunk item names its event's sort key (ValueChunks' `ek`), so its writes follow the event's key.
  const key = keyOfSort(item?.[schema.sort]) ?? keyOfSort(item?.["ek"])
  return key === undefined ? { _tag: "None" } : { _tag: "Key", key }
}

/** The placeholder a `Query` compares with the partition attribute by `=`, and its value. */
const queryPartition = (
  input: Input,
  schema: KeySchema
): { readonly name: string; readonly value: string } | undefined => {
  for (const match of (input.KeyConditionExpression ?? "").matchAll(/([#\w]+)\s*=\s*(:\w+)/g)) {
    const attribute = match[1]!.startsWith("#") ? input.ExpressionAttributeNames?.[match[1]!] : match[1]
    const value = textOf(input.ExpressionAttributeValues?.[match[2]!])
    if (attribute === schema.partition && value !== undefined) return { name: match[2]!, value }
  }
  return undefined
}

/** The sort-key bounds a `Query` names (one key when both bounds name it). */
const queryKeyRef = (input: Input, schema: KeySchema): KeyRef => {
  const expression = input.KeyConditionExpression ?? ""
  const partition = queryPartition(input, schema)?.name
  // Values of the key condition other than the partition's (a filter's values are not bounds).
  const bounds = Object.entries(input.ExpressionAttributeValues ?? {})
    .filter(([name]) => name !== partition && new RegExp(`${name}(?!\\w)`).test(expression))
    .map(([, value]) => value)
  if (bounds.length === 0) return { _tag: "All" }
  const keys = new Set(bounds.map(keyOfSort))
  const only = keys.size === 1 ? [...keys][0] : undefined
  if (only !== undefined) return { _tag: "Key", key: only }
  const sorted = bounds.map(bytesOf).filter((b) => b !== undefined).sort(Buffer.compare)
  if (sorted.length === 0) return { _tag: "None" }
  // `begins_with(sk, :p)` and a single `>=`/`<=` bound leave one side open: up to everything after the prefix.
  const upper = sorted.length === 1 ? Buffer.concat([sorted[0]!, Buffer.from([0xff])]) : sorted[sorted.length - 1]!
  return { _tag: "Range", lower: sorted[0]!, upper }
}

/** Units DynamoDB reported for a table. */
const unitsFor = (consumed: ReadonlyArray<Consumed>, table: string | undefined): number =>
  consumed.filter((entry) => consumed.length === 1 || entry.TableName === table)
    .reduce((total, entry) => total + (entry.CapacityUnits ?? 0), 0)

/**
 * Shares `total` over items: those with a known billed amount get it, the others share what is left equally (each
 * at least `floor`); when what is left cannot give them that, everything is scaled to the total instead.
 */
export const allocate = (total: number, known: ReadonlyArray<number | undefined>, floor: number): Array<number> => {
  if (known.length === 0) return []
  const knownSum = known.reduce<number>((sum, units) => sum + (units ?? 0), 0)
  const unknown = known.filter((units) => units === undefined).length
  const rest = total - knownSum
  if (unknown > 0 && rest >= unknown * floor) return known.map((units) => units ?? rest / unknown)
  const estimates = known.map((units) => units ?? floor)
  const estimated = estimates.reduce((sum, units) => sum + units, 0)
  return estimates.map((units) => estimated === 0 ? total / known.length : (total * units) / estimated)
}

interface Part {
  readonly table: string
  readonly item: Item | undefined
  /** Billed units when the request carries the whole item. */
  readonly known: number | undefined
}

/** Splits a table's reported units over the items of a multi-item request. */
const split = (
  parts: ReadonlyArray<Part>,
  consumed: ReadonlyArray<Consumed>,
  schema: KeySchema,
  kind: Kind,
  floor: number,
  consistent: boolean
): Array<Touch> => {
  const touches: Array<Touch> = []
  for (const table of new Set(parts.map((part) => part.table))) {
    const own = parts.filter((part) => part.table === table)
    const units = allocate(unitsFor(consumed, table), own.map((part) => part.known), floor)
    own.forEach((part, i) =>
      touches.push({
        table,
        pk: textOf(part.item?.[schema.partition]) ?? "?",
        key: keyRefOf(part.item, schema),
        kind,
        units: units[i]!,
        consistent
      })
    )
  }
  return touches
}

/** What a request touched, per partition-key value, with the capacity DynamoDB reported for it. */
export const touchesOf = (
  operation: string,
  input: Input,
  consumed: ReadonlyArray<Consumed>,
  schema: KeySchema = storeSchema
): Array<Touch> => {
  const table = input.TableName ?? "?"
  const one = (item: Item | undefined, kind: Kind, key: KeyRef = keyRefOf(item, schema)): Array<Touch> => [{
    table,
    pk: textOf(item?.[schema.partition]) ?? "?",
    key,
    kind,
    units: unitsFor(consumed, input.TableName),
    consistent: input.ConsistentRead === true
  }]
  switch (operation) {
    case "PutItem":
      return one(input.Item, "write")
    case "DeleteItem":
    case "UpdateItem":
      return one(input.Key, "write")
    case "GetItem":
      return one(input.Key, "read")
    case "Query":
      return [{
        ...one(undefined, "read")[0]!,
        pk: queryPartition(input, schema)?.value ?? "?",
        key: queryKeyRef(input, schema)
      }]
    case "Scan":
      return [{ ...one(undefined, "read")[0]!, pk: "*", key: { _tag: "All" } }]
    case "TransactWriteItems": {
      const parts = (input.TransactItems ?? []).map((entry): Part => {
        const [action, write] = Object.entries(entry)[0] ?? ["?", undefined]
        const item = write?.Item ?? write?.Key
        return {
          table: write?.TableName ?? "?",
          item,
          known: action === "Put" && item !== undefined ? writeUnits(itemBytes(item), true) : undefined
        }
      })
      return split(parts, consumed, schema, "write", 2, false)
    }
    case "TransactGetItems": {
      const parts = (input.TransactItems ?? []).map((entry): Part => {
        const read = Object.values(entry)[0]
        return { table: read?.TableName ?? "?", item: read?.Key, known: undefined }
      })
      return split(parts, consumed, schema, "read", 2, true)
    }
    case "BatchWriteItem": {
      const parts = Object.entries(input.RequestItems ?? {}).flatMap(([name, requests]) =>
        (isWrites(requests) ? requests : []).map((request): Part => {
          const item = request.PutRequest?.Item ?? request.DeleteRequest?.Key
          const known = request.PutRequest === undefined
            ? undefined
            : writeUnits(itemBytes(request.PutRequest.Item), false)
          return { table: name, item, known }
        })
      )
      return split(parts, consumed, schema, "write", 1, false)
    }
    case "BatchGetItem": {
      const requests = Object.entries(input.RequestItems ?? {})
      const consistent = requests.some(([, r]) => !isWrites(r) && r.ConsistentRead === true)
      const parts = requests.flatMap(([name, r]) =>
        (isWrites(r) ? [] : r.Keys ?? []).map((item): Part => ({ table: name, item, known: undefined }))
      )
      return split(parts, consumed, schema, "read", consistent ? 1 : 0.5, consistent)
    }
    default:
      return []
  }
}
