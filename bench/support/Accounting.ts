/**
 * Per-request accounting for the capacity and worker workloads: requests and capacity units by operation, table and
 * the part of the table each request touched (the live range, the history area, graves, data keys; shard leases,
 * checkpoints, heartbeats and announcements in the lease table), so a figure per operation can be taken apart into
 * where every unit goes. `BENCH_ACCOUNTING=1` prints it per measured phase.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"

/** Requests and units of one kind of request. */
export interface Account {
  requests: number
  units: number
}

/** Accounts by label (`PutItem events/history`, `TransactWriteItems events[put history, put graves, …]`, …). */
export type Accounts = Record<string, Account>

type Attribute = { readonly S?: string; readonly B?: Uint8Array }
type Item = Record<string, Attribute | undefined>

/** The part of a table an item is in: its partition, the namespace left out of the event table's own partitions. */
const partOf = (table: string, item: Item | undefined): string => {
  const pk = item?.pk?.S
  if (pk === undefined) return "?"
  if (table.endsWith(".projections")) {
    const sk = item?.sk?.S ?? ""
    return sk.startsWith("shard#") ? "shard" : sk === "" ? pk : "worker"
  }
  const nul = pk.indexOf("\u0000")
  return nul < 0 ? "live" : pk.slice(nul + 1)
}

/** What a lease-table update sets, which tells a checkpoint from a renewal or a take. */
const updateOf = (expression: string | undefined): string => {
  if (expression === undefined) return ""
  if (expression.includes("checkpoint")) return " checkpoint"
  if (expression.includes("#owner = :owner")) return " take"
  if (expression.includes("expiresAt")) return " renew"
  return ` ${expression.slice(0, 24)}`
}

const tableKind = (table: string | undefined): string =>
  table === undefined ? "?" : table.endsWith(".projections") ? "leases" : "events"

interface Input {
  readonly TableName?: string
  readonly Item?: Item
  readonly Key?: Item
  readonly UpdateExpression?: string
  readonly ExpressionAttributeValues?: Record<string, Attribute>
  readonly TransactItems?: ReadonlyArray<Record<string, { TableName?: string; Item?: Item; Key?: Item } | undefined>>
  readonly RequestItems?: Record<string, ReadonlyArray<unknown>>
}

/** A label naming what a request did, and where. */
export const labelOf = (operation: string, input: Input): string => {
  const table = input.TableName
  switch (operation) {
    case "PutItem":
      return `PutItem ${tableKind(table)}/${partOf(table ?? "", input.Item)}`
    case "DeleteItem":
    case "GetItem":
      return `${operation} ${tableKind(table)}/${partOf(table ?? "", input.Key)}`
    case "UpdateItem":
      return `UpdateItem ${tableKind(table)}/${partOf(table ?? "", input.Key)}${updateOf(input.UpdateExpression)}`
    case "Query": {
      const pk = Object.values(input.ExpressionAttributeValues ?? {}).find((value) => value.S !== undefined)
      return `Query ${tableKind(table)}/${partOf(table ?? "", { pk })}`
    }
    case "TransactWriteItems": {
      const parts = (input.TransactItems ?? []).map((entry) => {
        const [kind, write] = Object.entries(entry)[0] ?? ["?", undefined]
        return `${kind} ${partOf(write?.TableName ?? "", write?.Item ?? write?.Key)}`
      })
      return `TransactWriteItems ${
        tableKind(input.TransactItems?.[0]?.[Object.keys(input.TransactItems[0]!)[0]!]?.TableName)
      }[${parts.join(", ")}]`
    }
    default:
      return `${operation} ${tableKind(table)}`
  }
}

/** The `ConsumedCapacity` entries of a response (one per table; a single-table response has one). */
export const consumedOf = (
  output: unknown
): ReadonlyArray<{ readonly TableName?: string; readonly CapacityUnits?: number }> => {
  const reported = (output as { ConsumedCapacity?: unknown } | undefined)?.ConsumedCapacity
  return (Array.isArray(reported) ? reported : reported === undefined ? [] : [reported]) as Array<
    { TableName?: string; CapacityUnits?: number }
  >
}

/** Adds every request of a client, with the capacity it reports (`ReturnConsumedCapacity` must be asked for). */
export const account = (client: DynamoDBClient, accounts: Accounts): void => {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? "unknown").replace(/Command$/, "")
      const label = labelOf(operation, args.input as Input)
      const entry = accounts[label] ?? { requests: 0, units: 0 }
      accounts[label] = entry
      entry.requests++
      const result = await next(args)
      for (const consumed of consumedOf(result.output)) entry.units += consumed.CapacityUnits ?? 0
      return result
    },
    // After the capacity counter (which asks for ConsumedCapacity), before the request is serialized.
    { step: "initialize", name: "benchAccounting", priority: "low" }
  )
}

/** A copy, to subtract later. */
export const snapshotAccounts = (accounts: Accounts): Accounts =>
  Object.fromEntries(Object.entries(accounts).map(([label, entry]) => [label, { ...entry }]))

/** What happened since a snapshot, per operation of `per` operations, largest units first, one line per label. */
export const report = (accounts: Accounts, then: Accounts, per: number): ReadonlyArray<string> =>
  Object.entries(accounts)
    .map(([label, entry]) => ({
      label,
      requests: (entry.requests - (then[label]?.requests ?? 0)) / per,
      units: (entry.units - (then[label]?.units ?? 0)) / per
    }))
    .filter((line) => line.requests > 0)
    .sort((a, b) => b.units - a.units || b.requests - a.requests)
    .map((line) =>
      `${line.units.toFixed(3).padStart(8)} units ${line.requests.toFixed(3).padStart(8)} req  ${line.label}`
    )

/** Whether to print the accounting (`BENCH_ACCOUNTING=1`). */
export const enabled = (): boolean => process.env.BENCH_ACCOUNTING === "1"
