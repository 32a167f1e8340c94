/**
 * An AWS Lambda handler for DynamoDB Streams events that runs the same
 * projections as the worker, for users who let Lambda's event-source mapping
 * do the scaling. It answers with partial batch failures (enable
 * `ReportBatchItemFailures`): the first record that fails is reported, and
 * Lambda retries from it, so per-key order holds.
 */
import { Effect, ManagedRuntime } from "effect"
import type { Layer } from "effect"
import { EventTable } from "../../infra/EventTable.ts"
import { toStreamRecord } from "../../infra/streams/LambdaImages.ts"
import type { DynamoDBStreamEvent } from "../../infra/streams/LambdaImages.ts"
import { eventOfRecord } from "../../infra/streams/StreamEvents.ts"
import type { Projection } from "./Projection.ts"
import { covers, eventFor, valuesWanted } from "./Projection.ts"

export type { DynamoDBStreamEvent } from "../../infra/streams/LambdaImages.ts"

/** Lambda's partial batch response. */
export interface BatchResponse {
  readonly batchItemFailures: ReadonlyArray<{ readonly itemIdentifier: string }>
}

/** Applies one batch; the response names the first record that failed, if any. */
export const handleBatch = (projections: ReadonlyArray<Projection<unknown>>, event: DynamoDBStreamEvent) =>
  Effect.gen(function*() {
    const table = yield* EventTable
    for (const raw of event.Records) {
      const record = toStreamRecord(raw)
      const outcome = yield* Effect.result(Effect.gen(function*() {
        // A large value's chunks are read only for the projections that read values, as the worker does.
        const decoded = yield* eventOfRecord(table, record, (key) => valuesWanted(projections, key))
        if (decoded === undefined) return
        for (const projection of projections) {
          if (covers(projection, decoded.key)) yield* projection.apply(eventFor(projection, decoded))
        }
      }))
      if (outcome._tag === "Failure") {
        yield* Effect.logError(`record ${record.sequenceNumber} failed; Lambda will retry from it`, outcome.failure)
        return { batchItemFailures: [{ itemIdentifier: record.sequenceNumber }] } satisfies BatchResponse
      }
    }
    return { batchItemFailures: [] } satisfies BatchResponse
  })

/**
 * A Lambda handler over a layer built once per container (cold start) and
 * reused by every invocation.
 */
export const makeHandler = <E>(
  layer: Layer.Layer<EventTable, E>,
  projections: Effect.Effect<ReadonlyArray<Projection<unknown>>, E, EventTable>
) => {
  const runtime = ManagedRuntime.make(layer)
  const ready = runtime.runPromise(projections)
  return async (event: DynamoDBStreamEvent): Promise<BatchResponse> =>
    runtime.runPromise(handleBatch(await ready, event))
}
