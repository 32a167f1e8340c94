/**
 * Data keys at rest: each wrapped data key is stored once, in its own item
 * beside the events, and events name it by id. Re-wrapping under a new master
 * key therefore touches only these items, and shredding one destroys every
 * value encrypted under it.
 */
import { GetItemCommand, QueryCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { Effect, Option, Stream } from "effect"
import { StorageFailure } from "../../domain/Errors.ts"
import type { Throttled } from "../../domain/Errors.ts"
import type { AttributeMap } from "../Dynamo.ts"
import { conditionalPut, Dynamo } from "../Dynamo.ts"
import type { WrappedKey } from "./Keyring.ts"

/** A stored data key. */
export interface DataKeyRecord {
  readonly id: string
  /** The part of the namespace it encrypts, for shredding by prefix ("" is the whole namespace). */
  readonly scope: string
  readonly created: number
  readonly state: "active" | "shredded"
  readonly wrapped: ReadonlyArray<WrappedKey>
}

/** Where data keys live: the events' table, in a partition of their own per namespace. */
export interface DataKeyLocation {
  readonly table: string
  readonly namespace: string
  /**
   * The name values and data keys are bound to: the table's name unless set. Keep the old name here when the
   * store's items move to another table (a backup restored under a new name), or nothing decrypts there.
   */
  readonly storeId?: string | undefined
}

/** The name encryption binds to: the store id, else the table name. */
export const boundName = (location: DataKeyLocation): string => location.storeId ?? location.table

/** The partition of a namespace's data keys; NUL cannot occur in a namespace, so it never meets one. */
export const partitionOf = (namespace: string): string => `${namespace}\u0000data-keys`

const encodeWrapped = (wrapped: ReadonlyArray<WrappedKey>): AttributeValue => ({
  L: wrapped.map((copy) => ({ M: { p: { S: copy.provider }, k: { S: copy.keyId }, c: { B: copy.ciphertext } } }))
})

const decodeRecord = (item: AttributeMap): Effect.Effect<DataKeyRecord, StorageFailure> => {
  const id = item.sk?.B ? Buffer.from(item.sk.B).toString("utf8") : undefined
  const state = item.state?.S
  const created = Number(item.created?.N)
  const wrapped = (item.wrapped?.L ?? []).map((entry) => ({
    provider: entry.M?.p?.S ?? "",
    keyId: entry.M?.k?.S ?? "",
    ciphertext: entry.M?.c?.B ?? new Uint8Array()
  }))
  if (id === undefined || (state !== "active" && state !== "shredded") || !Number.isFinite(created)) {
    return Effect.fail(new StorageFailure({ operation: "decode data key", reason: "data key item is malformed" }))
  }
  return Effect.succeed({ id, scope: item.scope?.S ?? "", created, state, wrapped })
}

const keyOf = (location: DataKeyLocation, id: string): AttributeMap => ({
  pk: { S: partitionOf(location.namespace) },
  sk: { B: new Uint8Array(Buffer.from(id, "utf8")) }
})

/** Stores a new data key. Its id is fresh, so finding it already stored means our own retried write landed. */
export const put = (location: DataKeyLocation, record: DataKeyRecord) =>
  Dynamo.use((dynamo) =>
    conditionalPut(dynamo, {
      TableName: location.table,
      Item: {
        ...keyOf(location, record.id),
        scope: { S: record.scope },
        created: { N: String(record.created) },
        state: { S: record.state },
        wrapped: encodeWrapped(record.wrapped)
      },
      ConditionExpression: "attribute_not_exists(sk)"
    })
  ).pipe(
    Effect.asVoid,
    Effect.catchTag("ConditionalCheckFailed", () => Effect.void)
  )

/** The data key with this id. */
export const get = (
  location: DataKeyLocation,
  id: string
): Effect.Effect<Option.Option<DataKeyRecord>, Throttled | StorageFailure, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call(
      "GetItem",
      (client, abortSignal) =>
        client.send(new GetItemCommand({ TableName: location.table, Key: keyOf(location, id), ConsistentRead: true }), {
          abortSignal
        })
    )
  ).pipe(
    Effect.flatMap((
      output
    ) => (output.Item ? Effect.map(decodeRecord(output.Item), Option.some) : Effect.succeed(Option.none())))
  )

/** Every data key of the namespace, lazily. */
export const list = (location: DataKeyLocation): Stream.Stream<DataKeyRecord, Throttled | StorageFailure, Dynamo> =>
  Stream.unwrap(
    Dynamo.useSync((dynamo) =>
      Stream.paginate(
        undefined as AttributeMap | undefined,
        (startKey) =>
          dynamo.call("Query", (client, abortSignal) =>
            client.send(
              new QueryCommand({
                TableName: location.table,
                KeyConditionExpression: "pk = :pk",
                ExpressionAttributeValues: { ":pk": { S: partitionOf(location.namespace) } },
                ConsistentRead: true,
                ExclusiveStartKey: startKey
              }),
              { abortSignal }
            )).pipe(
              Effect.flatMap((output) =>
                Effect.map(
                  Effect.forEach(output.Items ?? [], decodeRecord),
                  (records) => [records, Option.fromNullishOr(output.LastEvaluatedKey)] as const
                )
              )
            )
      )
    )
  )

/** Replaces the wrapped copies of an active data key (re-wrapping); a shredded key stays shredded. */
export const replaceWrapped = (location: DataKeyLocation, id: string, wrapped: ReadonlyArray<WrappedKey>) =>
  Dynamo.use((dynamo) =>
    dynamo.callConditional("UpdateItem", (client, abortSignal) =>
      client.send(
        new UpdateItemCommand({
          TableName: location.table,
          Key: keyOf(location, id),
          UpdateExpression: "SET #wrapped = :wrapped",
          ConditionExpression: "#state = :active",
          // WRAPPED and STATE are DynamoDB reserved words.
          ExpressionAttributeNames: { "#state": "state", "#wrapped": "wrapped" },
          ExpressionAttributeValues: { ":wrapped": encodeWrapped(wrapped), ":active": { S: "active" } }
        }),
        { abortSignal }
      ))
  ).pipe(
    Effect.as(true),
    Effect.catchTag("ConditionalCheckFailed", () => Effect.succeed(false))
  )

/**
 * Destroys every wrapped copy of a data key and marks it shredded, filing it under `scope` when given (see
 * {@link retire}): one update either way.
 */
const destroy = (location: DataKeyLocation, id: string, scope?: string) =>
  Dynamo.use((dynamo) =>
    dynamo.call("UpdateItem", (client, abortSignal) =>
      client.send(
        new UpdateItemCommand({
          TableName: location.table,
          Key: keyOf(location, id),
          UpdateExpression: scope === undefined
            ? "SET #state = :shredded REMOVE #wrapped"
            : "SET #state = :shredded, #scope = :scope REMOVE #wrapped",
          ExpressionAttributeNames: {
            "#state": "state",
            "#wrapped": "wrapped",
            ...(scope === undefined ? {} : { "#scope": "scope" })
          },
          ExpressionAttributeValues: {
            ":shredded": { S: "shredded" },
            ...(scope === undefined ? {} : { ":scope": { S: scope } })
          }
        }),
        { abortSignal }
      ))
  ).pipe(Effect.asVoid)

/** Destroys every wrapped copy of a data key, so nothing encrypted under it can be read again. */
export const shred = (location: DataKeyLocation, id: string) => destroy(location, id)

/**
 * Destroys a data key (as {@link shred}) and files it under another scope: a scope that named what is now stored
 * sealed (a seal migration re-encrypted everything it held under the sealed scope), so that no data key item names
 * it in clear. Only a destroyed key can change scope: a live one's scope is bound into its wrapping.
 */
export const retire = (location: DataKeyLocation, id: string, scope: string) => destroy(location, id, scope)
