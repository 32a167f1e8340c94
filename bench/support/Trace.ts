/**
 * Captures the request pattern a client sends for the partition model: SDK middleware that records, for every
 * request that succeeds, when it was sent and what it touched per partition-key value with the capacity units
 * DynamoDB reported (`Touches`). The store and its projection worker share the bench's client, so one trace holds
 * both. `ReturnConsumedCapacity` is asked for by `Clients.countCapacity`, which runs before this middleware.
 *
 * A request that fails is counted but not traced: a failed conditional write is billed (one write unit at least),
 * yet DynamoDB returns no `ConsumedCapacity` with the error, so its units are unknown here.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import type { Input, KeySchema, TracedRequest } from "../simulation/Touches.ts"
import { storeSchema, touchesOf } from "../simulation/Touches.ts"
import { consumedOf } from "./Accounting.ts"

/** A request that failed (a lost condition, a throttle, a missing table): its operation and error name. */
export interface Failure {
  readonly at: number
  readonly operation: string
  readonly error: string
}

/** A growing trace of one client's requests. */
export interface Trace {
  readonly requests: Array<TracedRequest>
  /** Requests that failed: not in `requests`. */
  readonly failures: Array<Failure>
}

/** An empty trace. */
export const make = (): Trace => ({ requests: [], failures: [] })

/** Records every request `client` sends into `trace`, its items keyed by `schema`'s attributes. */
export const record = (client: DynamoDBClient, trace: Trace, schema: KeySchema = storeSchema): void => {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? "unknown").replace(/Command$/, "")
      const at = performance.now()
      try {
        const result = await next(args)
        const touches = touchesOf(operation, args.input as Input, consumedOf(result.output), schema)
        if (touches.length > 0) trace.requests.push({ at, operation, touches })
        return result
      } catch (error) {
        trace.failures.push({ at, operation, error: (error as { name?: string } | undefined)?.name ?? String(error) })
        throw error
      }
    },
    // After the capacity counter (which asks for ConsumedCapacity), before the request is serialized.
    { step: "initialize", name: "benchTrace", priority: "low" }
  )
}

/** A point in a trace to take what follows it from. */
export interface Mark {
  readonly requests: number
  readonly failures: number
}

/** The trace's end now. */
export const mark = (trace: Trace): Mark => ({ requests: trace.requests.length, failures: trace.failures.length })

/** What was recorded since `from`. */
export const since = (trace: Trace, from: Mark) => ({
  requests: trace.requests.slice(from.requests),
  failures: trace.failures.slice(from.failures)
})
