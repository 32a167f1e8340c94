/**
 * DynamoDB Streams as an Effect service: the four calls the stream reader
 * needs, with typed failures. Tests drive the same reader code through a
 * scripted implementation of this service (shard splits, trimming and expired
 * iterators cannot be produced by DynamoDB Local).
 */
import { DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import type { DynamoDBClientConfig } from "@aws-sdk/client-dynamodb"
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand
} from "@aws-sdk/client-dynamodb-streams"
import type { AttributeValue as StreamAttributeValue } from "@aws-sdk/client-dynamodb-streams"
import { Clock, Context, Data, Effect, Layer } from "effect"
import { StorageFailure, Throttled } from "../../domain/Errors.ts"
import type { AttributeMap } from "../Dynamo.ts"

/** A shard as `DescribeStream` lists it. */
export interface ShardDescription {
  readonly shardId: string
  readonly parentShardId: string | undefined
  /** Set once the shard is closed: no record will be added after it. */
  readonly endingSequenceNumber: string | undefined
}

/** One page of a stream's shard listing. */
export interface StreamPage {
  readonly status: string | undefined
  readonly shards: ReadonlyArray<ShardDescription>
  readonly lastEvaluatedShardId: string | undefined
}

/** Where to start reading a shard. */
export type ShardPosition =
  | { readonly _tag: "TrimHorizon" }
  | { readonly _tag: "Latest" }
  | { readonly _tag: "After"; readonly sequenceNumber: string }

/** A stream record, reduced to what projections need. */
export interface StreamRecord {
  readonly eventName: "INSERT" | "MODIFY" | "REMOVE"
  readonly sequenceNumber: string
  readonly keys: AttributeMap
  readonly newImage: AttributeMap | undefined
  /** `dynamodb.amazonaws.com` for deletions by TTL. */
  readonly principal: string | undefined
  /** When DynamoDB wrote the record (epoch ms, rounded by DynamoDB); the worker's lag is measured from it. */
  readonly approximateCreation: number | undefined
}

/** A page of records; no next iterator means the shard is closed and fully read. */
export interface RecordsPage {
  readonly records: ReadonlyArray<StreamRecord>
  readonly nextIterator: string | undefined
}

/** The shard iterator is older than 15 minutes. */
export class IteratorExpired extends Data.TaggedError("IteratorExpired")<{ readonly shardId: string }> {}

/** The records asked for were trimmed (older than 24 hours): something was missed. */
export class TrimmedData extends Data.TaggedError("TrimmedData")<{ readonly shardId: string }> {}

/** The stream or shard does not exist (any more). */
export class StreamGone extends Data.TaggedError("StreamGone")<{ readonly arn: string; readonly reason: string }> {}

/** Failures of the Streams calls. */
export type StreamsError = IteratorExpired | TrimmedData | StreamGone | Throttled | StorageFailure

/** The DynamoDB Streams calls the reader makes. */
export class StreamsApi extends Context.Service<StreamsApi, {
  /** The table's current stream, if streams are enabled. */
  readonly latestStreamArn: (table: string) => Effect.Effect<string | undefined, StreamsError>
  readonly describeStream: (
    arn: string,
    exclusiveStartShardId: string | undefined
  ) => Effect.Effect<StreamPage, StreamsError>
  readonly getShardIterator: (
    arn: string,
    shardId: string,
    position: ShardPosition
  ) => Effect.Effect<string | undefined, StreamsError>
  readonly getRecords: (shardId: string, iterator: string) => Effect.Effect<RecordsPage, StreamsError>
}>()("dynastate/StreamsApi") {
  /** The service over SDK clients built from one configuration, destroyed with the layer. */
  static readonly layer = (config: DynamoDBClientConfig): Layer.Layer<StreamsApi> =>
    Layer.effect(
      StreamsApi,
      Effect.acquireRelease(
        Effect.sync(() => ({
          dynamo: new DynamoDBClient(config),
          streams: new DynamoDBStreamsClient(config as never)
        })),
        (clients) =>
          Effect.sync(() => {
            clients.dynamo.destroy()
            clients.streams.destroy()
          })
      ).pipe(Effect.map((clients) => fromClients(clients.dynamo, clients.streams)))
    )
}

const classify = (operation: string, shardId: string, arn: string) => (error: unknown): StreamsError => {
  const name = (error as { name?: string })?.name ?? ""
  const message = String((error as { message?: string })?.message ?? error)
  switch (name) {
    case "ExpiredIteratorException":
      return new IteratorExpired({ shardId })
    case "TrimmedDataAccessException":
      return new TrimmedData({ shardId })
    case "ResourceNotFoundException":
      return new StreamGone({ arn, reason: message })
    case "LimitExceededException":
    case "ThrottlingException":
    case "ProvisionedThroughputExceededException":
      return new Throttled({ operation, reason: `${name}: ${message}` })
    default:
      return new StorageFailure({ operation, reason: name ? `${name}: ${message}` : message })
  }
}

// Stream images use the Streams package's AttributeValue, structurally the same as DynamoDB's.
const asAttributeMap = (image: Record<string, StreamAttributeValue> | undefined): AttributeMap | undefined =>
  image as AttributeMap | undefined

/** The least time between two `DescribeStream` calls of one process: at most 10 a second (Teleport throttled itself here). */
export const describeStreamSpacingMillis = 100

/** Spaces calls at least `millis` apart, across all fibers that share it. */
export const pacer = (millis: number) => {
  let nextSlot = 0
  return Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const slot = Math.max(now, nextSlot)
    nextSlot = slot + millis
    if (slot > now) yield* Effect.sleep(slot - now)
  })
}

/** The service over existing clients. */
export const fromClients = (dynamo: DynamoDBClient, streams: DynamoDBStreamsClient): StreamsApi["Service"] => {
  const paced = pacer(describeStreamSpacingMillis)
  return StreamsApi.of({
    latestStreamArn: (table) =>
      Effect.tryPromise({
        try: (signal) => dynamo.send(new DescribeTableCommand({ TableName: table }), { abortSignal: signal }),
        catch: classify("DescribeTable", "", table)
      }).pipe(Effect.map((output) =>
        output.Table?.StreamSpecification?.StreamEnabled ? output.Table.LatestStreamArn : undefined
      )),
    describeStream: (arn, exclusiveStartShardId) =>
      paced.pipe(Effect.andThen(Effect.tryPromise({
        try: (signal) =>
          streams.send(new DescribeStreamCommand({ StreamArn: arn, ExclusiveStartShardId: exclusiveStartShardId }), {
            abortSignal: signal
          }),
        catch: classify("DescribeStream", "", arn)
      }))).pipe(
        Effect.map((output) => ({
          status: output.StreamDescription?.StreamStatus,
          lastEvaluatedShardId: output.StreamDescription?.LastEvaluatedShardId,
          shards: (output.StreamDescription?.Shards ?? []).flatMap((shard) =>
            shard.ShardId
              ? [{
                shardId: shard.ShardId,
                parentShardId: shard.ParentShardId,
                endingSequenceNumber: shard.SequenceNumberRange?.EndingSequenceNumber
              }]
              : []
          )
        }))
      ),
    getShardIterator: (arn, shardId, position) =>
      Effect.tryPromise({
        try: (signal) =>
          streams.send(
            new GetShardIteratorCommand({
              StreamArn: arn,
              ShardId: shardId,
              ShardIteratorType: position._tag === "TrimHorizon"
                ? "TRIM_HORIZON"
                : position._tag === "Latest"
                ? "LATEST"
                : "AFTER_SEQUENCE_NUMBER",
              ...(position._tag === "After" ? { SequenceNumber: position.sequenceNumber } : {})
            }),
            { abortSignal: signal }
          ),
        catch: classify("GetShardIterator", shardId, arn)
      }).pipe(Effect.map((output) => output.ShardIterator)),
    getRecords: (shardId, iterator) =>
      Effect.tryPromise({
        try: (signal) =>
          streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }), { abortSignal: signal }),
        catch: classify("GetRecords", shardId, "")
      }).pipe(
        Effect.map((output) => ({
          nextIterator: output.NextShardIterator,
          records: (output.Records ?? []).map((record): StreamRecord => ({
            eventName: (record.eventName ?? "MODIFY") as StreamRecord["eventName"],
            sequenceNumber: record.dynamodb?.SequenceNumber ?? "",
            keys: asAttributeMap(record.dynamodb?.Keys) ?? {},
            newImage: asAttributeMap(record.dynamodb?.NewImage),
            principal: record.userIdentity?.PrincipalId,
            approximateCreation: record.dynamodb?.ApproximateCreationDateTime?.getTime()
          }))
        }))
      )
  })
}
