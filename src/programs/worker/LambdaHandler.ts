/**
 * An AWS Lambda handler for DynamoDB Streams events that runs the same
 * projections as the worker, for users who let Lambda's event-source mapping
 * do the scaling. It answers with partial batch failures (enable
 * `ReportBatchItemFailures`): the first record that fails is reported, and
 * Lambda retries from it, so per-key order holds.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { Effect, ManagedRuntime } from "effect"
import type { Layer } from "effect"
import { EventTable } from "../../infra/EventTable.ts"
import type { StreamRecord } from "../../infra/streams/StreamsApi.ts"
import type { Projection } from "./Projection.ts"
import { covers } from "./Projection.ts"
import { eventOfRecord } from "../../infra/streams/StreamEvents.ts"

/** A DynamoDB stream attribute as Lambda delivers it: binary values as base64 text. */
type LambdaAttribute = Record<string, unknown>

/** The part of Lambda's DynamoDB Streams event the handler reads. */
export interface DynamoDBStreamEvent {
  readonly Records: ReadonlyArray<{
    readonly eventName?: string
    readonly userIdentity?: { readonly principalId?: string }
    readonly dynamodb?: {
      readonly SequenceNumber?: string
      readonly Keys?: Record<string, LambdaAttribute>
      readonly NewImage?: Record<string, LambdaAttribute>
      readonly ApproximateCreationDateTime?: number
    }
  }>
}

/** Lambda's partial batch response. */
export interface BatchResponse {
  readonly batchItemFailures: ReadonlyArray<{ readonly itemIdentifier: string }>
}

/** Converts Lambda's JSON attribute form to the SDK's (base64 text to bytes, recursively). */
export const fromLambdaAttribute = (value: LambdaAttribute): AttributeValue => {
  if (typeof value.B === "string") return { B: new Uint8Array(Buffer.from(value.B, "base64")) }
  if (Array.isArray(value.BS)) return { BS: value.BS.map((b: string) => new Uint8Array(Buffer.from(b, "base64"))) }
  if (Array.isArray(value.L)) return { L: value.L.map((entry: LambdaAttribute) => fromLambdaAttribute(entry)) }
  if (value.M !== undefined && typeof value.M === "object") return { M: fromLambdaImage(value.M as Record<string, LambdaAttribute>) }
  return value as unknown as AttributeValue
}

const fromLambdaImage = (image: Record<string, LambdaAttribute>): Record<string, AttributeValue> =>
  Object.fromEntries(Object.entries(image).map(([name, value]) => [name, fromLambdaAttribute(value)]))

/** A record of Lambda's event as the stream reader would have delivered it. */
export const toStreamRecord = (record: DynamoDBStreamEvent["Records"][number]): StreamRecord => ({
  eventName: (record.eventName ?? "MODIFY") as StreamRecord["eventName"],
  sequenceNumber: record.dynamodb?.SequenceNumber ?? "",
  keys: fromLambdaImage(record.dynamodb?.Keys ?? {}),
  newImage: record.dynamodb?.NewImage ? fromLambdaImage(record.dynamodb.NewImage) : undefined,
  principal: record.userIdentity?.principalId,
  approximateCreation: record.dynamodb?.ApproximateCreationDateTime === undefined
    ? undefined
    : record.dynamodb.ApproximateCreationDateTime * 1000
})

/** Applies one batch; the response names the first record that failed, if any. */
export const handleBatch = (projections: ReadonlyArray<Projection<unknown>>, event: DynamoDBStreamEvent) =>
  Effect.gen(function*() {
    const table = yield* EventTable
    for (const raw of event.Records) {
      const record = toStreamRecord(raw)
      const outcome = yield* Effect.result(Effect.gen(function*() {
        const decoded = yield* eventOfRecord(table, record)
        if (decoded === undefined) return
        for (const projection of projections) if (covers(projection, decoded.key)) yield* projection.apply(decoded)
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
