/**
 * Checks that IAM allows a DynamoDB action without changing anything: every write is conditional on an item that
 * cannot exist (a sort key no codec makes, in the caller's own partition), so DynamoDB authorises the request, then
 * refuses it on its condition. The partition is the caller's (the namespace, the lease group) because a principal
 * confined by `dynamodb:LeadingKeys` may name no other: a probe elsewhere would report its permissions denied. A refused condition proves the permission; `AccessDeniedException` disproves it. A failed
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
  /** The partition to probe in: one the caller's principal may use (its namespace, its lease group). */
  readonly partition: string
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

/**
 * A key no item of any codec has: the sort key starts with NUL, which begins no event, history or grave sort key
 * (keys are non-empty and hold no NUL), no data key id and no lease or worker item's sort key.
 */
const probeKey = (target: ProbeTable): AttributeMap => {
  const sort = `\u0000dynastate-doctor-${randomBytes(16).toString("hex")}`
  return {
    [target.hashKey]: { S: target.partition },
    [target.rangeKey]: target.rangeType === "B" ? { B: new Uint8Array(Buffer.from(sort, "utf8")) } : { S: sort }
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
              KeyConditionExpression: "#h = :h AND #r = :r",
              ExpressionAttributeNames: { "#h": target.hashKey, "#r": target.rangeKey },
              ExpressionAttributeValues: { ":h": Key[target.hashKey]!, ":r": Key[target.rangeKey]! },
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
