/**
 * Checks that IAM allows a DynamoDB action without changing anything: every write is conditional on an item that
 * cannot exist (a random sort key in a partition no store uses), so DynamoDB authorises the request, then refuses
 * it on its condition. A refused condition proves the permission; `AccessDeniedException` disproves it. A failed
 * conditional write leaves no item and no stream record.
 */
import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand
} from "@aws-sdk/client-dynamodb"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import type { AttributeMap } from "../Dynamo.ts"
import { Dynamo } from "../Dynamo.ts"
import { errorName } from "./TableAdmin.ts"

/** What a probe found: the action is allowed, denied, or could not be told (another failure, with its reason). */
export type Probe =
  | { readonly _tag: "Allowed" }
  | { readonly _tag: "Denied"; readonly reason: string }
  | { readonly _tag: "Unknown"; readonly reason: string }

/** The key attributes of a table, by type: the event table's sort key is binary, the side tables' are strings. */
export interface ProbeTable {
  readonly table: string
  readonly hashKey: string
  readonly rangeKey: string
  readonly rangeType: "S" | "B"
}

const deniedNames = new Set(["AccessDeniedException", "UnrecognizedClientException"])

interface CallFailure {
  readonly _tag: string
  readonly reason?: string
  readonly reasons?: ReadonlyArray<{ readonly Code?: string | undefined }>
}

const judge = <A>(attempt: Effect.Effect<A, CallFailure>) =>
  attempt.pipe(
    Effect.as<Probe>({ _tag: "Allowed" }),
    Effect.catch((error): Effect.Effect<Probe> => {
      if (error._tag === "ConditionalCheckFailed") return Effect.succeed({ _tag: "Allowed" })
      const codes = (error.reasons ?? []).map((reason) => reason.Code ?? "None")
      if (codes.includes("ConditionalCheckFailed")) return Effect.succeed({ _tag: "Allowed" })
      const reason = error.reason ?? `${error._tag} ${codes.join(", ")}`.trim()
      const name = errorName({ reason })
      return Effect.succeed(
        name !== undefined && deniedNames.has(name) ? { _tag: "Denied", reason } : { _tag: "Unknown", reason }
      )
    })
  )

/** A key in a partition no store writes to (NUL never occurs in a namespace or a group name). */
const probeKey = (target: ProbeTable): AttributeMap => {
  const sort = randomBytes(16)
  return {
    [target.hashKey]: { S: "\u0000dynastate-doctor" },
    [target.rangeKey]: target.rangeType === "B" ? { B: new Uint8Array(sort) } : { S: sort.toString("hex") }
  }
}

const mustExist = (target: ProbeTable) => ({
  ConditionExpression: "attribute_exists(#h)",
  ExpressionAttributeNames: { "#h": target.hashKey }
})

/** The DynamoDB item actions the store's features use, each probed without a change. */
export const itemActions = ["Query", "GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"] as const

/** An item action a probe can check. */
export type ItemAction = typeof itemActions[number]

/** Probes one item action on a table. */
export const probe = (target: ProbeTable, action: ItemAction): Effect.Effect<Probe, never, Dynamo> =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const Key = probeKey(target)
    const TableName = target.table
    switch (action) {
      case "Query":
        return yield* judge(dynamo.call("Query", (client, abortSignal) =>
          client.send(
            new QueryCommand({
              TableName,
              KeyConditionExpression: "#h = :h",
              ExpressionAttributeNames: { "#h": target.hashKey },
              ExpressionAttributeValues: { ":h": Key[target.hashKey]! },
              Limit: 1
            }),
            { abortSignal }
          )))
      case "GetItem":
        return yield* judge(
          dynamo.call(
            "GetItem",
            (client, abortSignal) => client.send(new GetItemCommand({ TableName, Key }), { abortSignal })
          )
        )
      case "PutItem":
        return yield* judge(
          dynamo.callConditional(
            "PutItem",
            (client, abortSignal) =>
              client.send(new PutItemCommand({ TableName, Item: Key, ...mustExist(target) }), { abortSignal })
          )
        )
      case "UpdateItem":
        return yield* judge(dynamo.callConditional("UpdateItem", (client, abortSignal) =>
          client.send(
            new UpdateItemCommand({
              TableName,
              Key,
              UpdateExpression: "SET #p = :p",
              ...mustExist(target),
              ExpressionAttributeNames: { "#h": target.hashKey, "#p": "probe" },
              ExpressionAttributeValues: { ":p": { S: "doctor" } }
            }),
            { abortSignal }
          )))
      case "DeleteItem":
        return yield* judge(
          dynamo.callConditional(
            "DeleteItem",
            (client, abortSignal) =>
              client.send(new DeleteItemCommand({ TableName, Key, ...mustExist(target) }), { abortSignal })
          )
        )
      case "ConditionCheckItem":
        return yield* judge(dynamo.callTransaction("TransactWriteItems", (client, abortSignal) =>
          client.send(
            new TransactWriteItemsCommand({
              TransactItems: [{ ConditionCheck: { TableName, Key, ...mustExist(target) } }]
            }),
            { abortSignal }
          )))
    }
  })
