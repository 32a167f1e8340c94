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

/** A client on a local endpoint with a request counter attached. */
export const makeBenchClient = (endpoint: string) => {
  const counts: Record<string, number> = {}
  const client = new DynamoDBClient({ endpoint, region: "us-east-1", credentials: localCredentials, maxAttempts: 5 })
  countRequests(client, counts)
  return { client, counts }
}
