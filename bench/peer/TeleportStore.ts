/**
 * The peer: a key/value store in the shape of Teleport's own DynamoDB backend, the design people pick without
 * event sourcing or client-side encryption. One item per key under one hash key, the full path as range key;
 * `put` is an unconditional `PutItem`, `get` a consistent `GetItem`, `create` is conditional on
 * `attribute_not_exists`, `compareAndSwap` on the stored `Value`, ranges are `Query`s, `deleteRange` queries the
 * keys and deletes them with `BatchWriteItem`, `atomicWrite` is one `TransactWriteItems`, expiry a TTL attribute.
 * Values are stored as given (no encryption), as Teleport does.
 */
import {
  BatchWriteItemCommand,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand
} from "@aws-sdk/client-dynamodb"
import type { AttributeValue, DynamoDBClient, TransactWriteItem } from "@aws-sdk/client-dynamodb"
import { Data, Effect } from "effect"
import { randomUUID } from "node:crypto"

/** A request failed for a reason other than its condition. */
export class PeerFailure
  extends Data.TaggedError("PeerFailure")<{ readonly operation: string; readonly reason: string }>
{}

/** A conditional write's condition did not hold (`create` of a live key, `compareAndSwap` of a changed value). */
export class PeerConditionFailed extends Data.TaggedError("PeerConditionFailed")<{ readonly key: string }> {}

/** An item as the peer returns it. */
export interface PeerItem {
  readonly key: string
  readonly value: Uint8Array
  readonly revision: string
  readonly expires?: number | undefined
}

/** The hash key every item lives under, as Teleport's `HashKey` attribute. */
export const hashKey = "teleport"

const attributes = {
  hash: "HashKey",
  path: "FullPath",
  value: "Value",
  revision: "Revision",
  timestamp: "Timestamp",
  expires: "Expires"
} as const

const send = <A>(operation: string, request: () => Promise<A>) =>
  Effect.tryPromise({
    try: request,
    catch: (error) => new PeerFailure({ operation, reason: String((error as Error)?.message ?? error) })
  })

const conditional = <A>(key: string, operation: string, request: () => Promise<A>) =>
  Effect.tryPromise({
    try: request,
    catch: (error) =>
      (error as { name?: string })?.name === "ConditionalCheckFailedException" ||
        (error as { name?: string })?.name === "TransactionCanceledException"
        ? new PeerConditionFailed({ key })
        : new PeerFailure({ operation, reason: String((error as Error)?.message ?? error) })
  })

const itemOf = (key: string, value: Uint8Array, expires?: number): Record<string, AttributeValue> => ({
  [attributes.hash]: { S: hashKey },
  [attributes.path]: { S: key },
  [attributes.value]: { B: value },
  [attributes.revision]: { S: randomUUID() },
  [attributes.timestamp]: { N: String(Date.now()) },
  ...(expires === undefined ? {} : { [attributes.expires]: { N: String(Math.ceil(expires / 1000)) } })
})

const decode = (item: Record<string, AttributeValue>): PeerItem => {
  const expires = item[attributes.expires]?.N
  return {
    key: item[attributes.path]!.S!,
    value: item[attributes.value]!.B!,
    revision: item[attributes.revision]?.S ?? "",
    ...(expires === undefined ? {} : { expires: Number(expires) * 1000 })
  }
}

/** Expired items are absent, as in Teleport (the TTL attribute only bounds how long DynamoDB keeps them). */
const live = (item: PeerItem | undefined, now: number): PeerItem | undefined =>
  item === undefined || (item.expires !== undefined && item.expires <= now) ? undefined : item

/** An atomic write's entry: a condition on the key's live item, and a put or delete. */
export interface PeerAction {
  readonly key: string
  readonly condition: "whatever" | "exists" | "notExists"
  readonly put?: Uint8Array | undefined
}

/** Creates the peer's table (streams with new images, as Teleport's) unless it exists. */
export const ensureTable = (client: DynamoDBClient, table: string) =>
  Effect.gen(function*() {
    const exists = yield* send("DescribeTable", () => client.send(new DescribeTableCommand({ TableName: table }))).pipe(
      Effect.as(true),
      Effect.catchIf((error) => error.reason.includes("non-existent") || error.reason.includes("not found"), () =>
        Effect.succeed(false))
    )
    if (exists) {
      return
    }
    yield* send("CreateTable", () =>
      client.send(
        new CreateTableCommand({
          TableName: table,
          KeySchema: [{ AttributeName: attributes.hash, KeyType: "HASH" }, {
            AttributeName: attributes.path,
            KeyType: "RANGE"
          }],
          AttributeDefinitions: [{ AttributeName: attributes.hash, AttributeType: "S" }, {
            AttributeName: attributes.path,
            AttributeType: "S"
          }],
          StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_IMAGE" },
          BillingMode: "PAY_PER_REQUEST"
        })
      ))
  })

/** The peer over a client and a table. */
export const make = (client: DynamoDBClient, table: string) => {
  const keyOf = (key: string) => ({ [attributes.hash]: { S: hashKey }, [attributes.path]: { S: key } })

  /** Stores an item unconditionally; returns the revision written. */
  const put = (key: string, value: Uint8Array, expires?: number) => {
    const item = itemOf(key, value, expires)
    return send("PutItem", () => client.send(new PutItemCommand({ TableName: table, Item: item }))).pipe(
      Effect.as(item[attributes.revision]!.S!)
    )
  }

  const create = (key: string, value: Uint8Array) =>
    conditional(key, "PutItem", () =>
      client.send(
        new PutItemCommand({
          TableName: table,
          Item: itemOf(key, value),
          ConditionExpression: "attribute_not_exists(#path)",
          ExpressionAttributeNames: { "#path": attributes.path }
        })
      ))

  const get = (key: string) =>
    Effect.map(
      send(
        "GetItem",
        () => client.send(new GetItemCommand({ TableName: table, Key: keyOf(key), ConsistentRead: true }))
      ),
      (output) => live(output.Item === undefined ? undefined : decode(output.Item), Date.now())
    )

  const compareAndSwap = (key: string, expected: Uint8Array, replaceWith: Uint8Array) =>
    conditional(key, "PutItem", () =>
      client.send(
        new PutItemCommand({
          TableName: table,
          Item: itemOf(key, replaceWith),
          ConditionExpression: "#value = :expected",
          ExpressionAttributeNames: { "#value": attributes.value },
          ExpressionAttributeValues: { ":expected": { B: expected } }
        })
      ))

  /** Deletes a key's item if there is one (`attribute_exists`), as Teleport's `Delete`. */
  const remove = (key: string) =>
    conditional(key, "DeleteItem", () =>
      client.send(
        new DeleteItemCommand({
          TableName: table,
          Key: keyOf(key),
          ConditionExpression: "attribute_exists(#path)",
          ExpressionAttributeNames: { "#path": attributes.path }
        })
      ))

  /** The live items with start <= key <= end, every page, in either direction. */
  const getRange = (start: string, end: string, descending = false) =>
    Effect.gen(function*() {
      const items: Array<PeerItem> = []
      let from: Record<string, AttributeValue> | undefined
      const now = Date.now()
      do {
        const page = yield* send("Query", () =>
          client.send(
            new QueryCommand({
              TableName: table,
              KeyConditionExpression: "#hash = :hash AND #path BETWEEN :start AND :end",
              ExpressionAttributeNames: { "#hash": attributes.hash, "#path": attributes.path },
              ExpressionAttributeValues: { ":hash": { S: hashKey }, ":start": { S: start }, ":end": { S: end } },
              ConsistentRead: true,
              ScanIndexForward: !descending,
              ExclusiveStartKey: from
            })
          ))
        for (const item of page.Items ?? []) {
          const decoded = live(decode(item), now)
          if (decoded) items.push(decoded)
        }
        from = page.LastEvaluatedKey
      } while (from !== undefined)
      return items
    })

  /** Deletes every item of a range: a keys-only query, then batches of 25 deletes (unprocessed ones again). */
  const deleteRange = (start: string, end: string) =>
    Effect.gen(function*() {
      const keys: Array<string> = []
      let from: Record<string, AttributeValue> | undefined
      do {
        const page = yield* send("Query", () =>
          client.send(
            new QueryCommand({
              TableName: table,
              KeyConditionExpression: "#hash = :hash AND #path BETWEEN :start AND :end",
              ExpressionAttributeNames: { "#hash": attributes.hash, "#path": attributes.path },
              ExpressionAttributeValues: { ":hash": { S: hashKey }, ":start": { S: start }, ":end": { S: end } },
              ProjectionExpression: "#path",
              ConsistentRead: true,
              ExclusiveStartKey: from
            })
          ))
        for (const item of page.Items ?? []) keys.push(item[attributes.path]!.S!)
        from = page.LastEvaluatedKey
      } while (from !== undefined)
      for (let i = 0; i < keys.length; i += 25) {
        let requests = keys.slice(i, i + 25).map((key) => ({ DeleteRequest: { Key: keyOf(key) } }))
        while (requests.length > 0) {
          const output = yield* send("BatchWriteItem", () =>
            client.send(new BatchWriteItemCommand({ RequestItems: { [table]: requests } })))
          requests = (output.UnprocessedItems?.[table] ?? []) as typeof requests
        }
      }
      return keys.length
    })

  /** All actions or none, in one transaction; fails with `PeerConditionFailed` when a condition does not hold. */
  const atomicWrite = (actions: ReadonlyArray<PeerAction>) => {
    const items: Array<TransactWriteItem> = actions.map((action) => {
      const condition = action.condition === "exists"
        ? { ConditionExpression: "attribute_exists(#path)", ExpressionAttributeNames: { "#path": attributes.path } }
        : action.condition === "notExists"
        ? {
          ConditionExpression: "attribute_not_exists(#path)",
          ExpressionAttributeNames: { "#path": attributes.path }
        }
        : {}
      return action.put === undefined
        ? { Delete: { TableName: table, Key: keyOf(action.key), ...condition } }
        : { Put: { TableName: table, Item: itemOf(action.key, action.put), ...condition } }
    })
    return conditional(
      actions[0]?.key ?? "",
      "TransactWriteItems",
      () => client.send(new TransactWriteItemsCommand({ TransactItems: items }))
    )
  }

  return { table, put, create, get, compareAndSwap, getRange, delete: remove, deleteRange, atomicWrite }
}

/** The peer's operations. */
export type TeleportStore = ReturnType<typeof make>
