/**
 * SDK clients for the bench: the settings dynastate's own layers use (`StoreLive.clientConfig`: region, five
 * attempts, the base64 decoder, the signing hash, the endpoint, DynamoDB Local's credentials), with middleware
 * counting requests and consumed capacity per operation, so every store, the peer included, is measured through the
 * same client configuration.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import type { DynamoDBClientConfig } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { SigningSha256 } from "../../src/infra/crypto/SigningHash.ts"
import { base64Decoder } from "../../src/infra/Dynamo.ts"
import { localCredentials } from "../../src/programs/app/StoreLive.ts"
import type { Accounts } from "./Accounting.ts"
import { account, consumedOf } from "./Accounting.ts"

/** Requests and capacity units a client sent and consumed, by operation name (`PutItem`, `Query`, …). */
export interface Counters {
  readonly requests: Record<string, number>
  readonly capacity: Record<string, number>
}

/** Operations billed in write request units; the others that report capacity are billed in read units. */
const writeOperations = new Set(["PutItem", "DeleteItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem"])
const capacityOperations = new Set([...writeOperations, "GetItem", "Query", "Scan", "TransactGetItems"])

/** Counts requests by operation name through SDK middleware. */
export const countRequests = (client: DynamoDBClient, requests: Record<string, number>): void => {
  client.middlewareStack.add(
    (next, context) => (args) => {
      const operation = (context.commandName ?? "unknown").replace(/Command$/, "")
      requests[operation] = (requests[operation] ?? 0) + 1
      return next(args)
    },
    { step: "initialize", name: "benchRequestCounter" }
  )
}

/**
 * Asks every request that can report it for its consumed capacity (`ReturnConsumedCapacity: TOTAL`) and adds it up
 * by operation, as DynamoDB reports it (DynamoDB Local computes it as AWS bills it).
 */
export const countCapacity = (client: DynamoDBClient, capacity: Record<string, number>): void => {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? "unknown").replace(/Command$/, "")
      const input = args.input as { ReturnConsumedCapacity?: string }
      if (capacityOperations.has(operation)) input.ReturnConsumedCapacity ??= "TOTAL"
      const result = await next(args)
      for (const entry of consumedOf(result.output)) {
        capacity[operation] = (capacity[operation] ?? 0) + (entry.CapacityUnits ?? 0)
      }
      return result
    },
    { step: "initialize", name: "benchCapacityCounter" }
  )
}

/** The SDK options dynastate's layers give a DynamoDB client for an endpoint. */
export const clientOptions = (endpoint: string): DynamoDBClientConfig => ({
  endpoint,
  region: "us-east-1",
  credentials: localCredentials,
  maxAttempts: 5,
  base64Decoder,
  sha256: SigningSha256
})

/** A counted DynamoDB client and a Streams client on an endpoint. */
export interface BenchClients {
  readonly dynamodb: DynamoDBClient
  readonly streams: DynamoDBStreamsClient
  readonly counters: Counters
  /** Requests and units by operation, table and part of the table (see `Accounting`). */
  readonly accounts: Accounts
  readonly destroy: () => void
}

/** A DynamoDB client with both counters attached, and a Streams client with the same settings. */
export const makeClients = (endpoint: string, config: Partial<DynamoDBClientConfig> = {}): BenchClients => {
  const counters: Counters = { requests: {}, capacity: {} }
  const dynamodb = new DynamoDBClient({ ...clientOptions(endpoint), ...config })
  countRequests(dynamodb, counters.requests)
  countCapacity(dynamodb, counters.capacity)
  const accounts: Accounts = {}
  account(dynamodb, accounts)
  const streams = new DynamoDBStreamsClient(clientOptions(endpoint))
  return {
    dynamodb,
    streams,
    counters,
    accounts,
    destroy: () => {
      dynamodb.destroy()
      streams.destroy()
    }
  }
}

/** A copy of the counters now, to subtract later. */
export const snapshot = (counters: Counters): Counters => ({
  requests: { ...counters.requests },
  capacity: { ...counters.capacity }
})

const sum = (now: Record<string, number>, then: Record<string, number>, only?: (operation: string) => boolean) =>
  Object.entries(now).reduce(
    (total, [operation, count]) => (only && !only(operation) ? total : total + count - (then[operation] ?? 0)),
    0
  )

/** What happened between a snapshot and now: requests, write units and read units. */
export const since = (counters: Counters, then: Counters) => ({
  requests: sum(counters.requests, then.requests),
  writeUnits: sum(counters.capacity, then.capacity, (operation) => writeOperations.has(operation)),
  readUnits: sum(counters.capacity, then.capacity, (operation) => !writeOperations.has(operation))
})
