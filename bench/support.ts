/**
 * A DynamoDB client for benchmarks that counts the requests it sends, per operation.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { localCredentials } from "../src/programs/app/StoreLive.ts"

/** Counts requests by operation name (`PutItem`, `Query`, …) through SDK middleware. */
export const countRequests = (client: DynamoDBClient, counts: Record<string, number>): void => {
  client.middlewareStack.add(
    (next, context) => (args) => {
      const operation = (context.commandName ?? "unknown").replace(/Command$/, "")
      counts[operation] = (counts[operation] ?? 0) + 1
      return next(args)
    },
    { step: "initialize", name: "dynastateRequestCounter" }
  )
}

/**
 * Asks every write and read for its consumed capacity (`ReturnConsumedCapacity: TOTAL`) and adds it up in
 * `capacity`, by operation, as DynamoDB reports it (DynamoDB Local computes it as AWS would bill it).
 */
export const countCapacity = (client: DynamoDBClient, capacity: Record<string, number>): void => {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? "unknown").replace(/Command$/, "")
      const input = args.input as { ReturnConsumedCapacity?: string }
      if (/^(PutItem|DeleteItem|UpdateItem|GetItem|Query|TransactWriteItems)$/.test(operation)) {
        input.ReturnConsumedCapacity ??= "TOTAL"
      }
      const result = await next(args)
      const reported = (result.output as { ConsumedCapacity?: unknown }).ConsumedCapacity
      const entries = (Array.isArray(reported) ? reported : reported === undefined ? [] : [reported]) as Array<
        { CapacityUnits?: number }
      >
      for (const entry of entries) capacity[operation] = (capacity[operation] ?? 0) + (entry.CapacityUnits ?? 0)
      return result
    },
    { step: "initialize", name: "dynastateCapacityCounter" }
  )
}

/** A client on a local endpoint with a request counter and a capacity counter attached. */
export const makeBenchClient = (endpoint: string) => {
  const counts: Record<string, number> = {}
  const capacity: Record<string, number> = {}
  const client = new DynamoDBClient({ endpoint, region: "us-east-1", credentials: localCredentials, maxAttempts: 5 })
  countRequests(client, counts)
  countCapacity(client, capacity)
  return { client, counts, capacity }
}
