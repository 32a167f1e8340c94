/**
 * The peer's watch, as Teleport's DynamoDB backend does it: poll the table's stream, every shard from its tip,
 * once per poll period (Teleport's default is one second) while it is empty, and hand each record's new image on.
 */
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb"
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { DescribeStreamCommand, GetRecordsCommand, GetShardIteratorCommand } from "@aws-sdk/client-dynamodb-streams"
import type { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { Effect } from "effect"
import type { Scope } from "effect"
import { PeerFailure } from "./TeleportStore.ts"

/** Teleport's `backend.DefaultPollStreamPeriod`. */
export const teleportPollMillis = 1000

/** A change the peer's watch delivers: the key and the revision written. */
export interface PeerChange {
  readonly key: string
  readonly revision: string
}

const call = <A>(operation: string, request: () => Promise<A>) =>
  Effect.tryPromise({
    try: request,
    catch: (error) => new PeerFailure({ operation, reason: String((error as Error)?.message ?? error) })
  })

/**
 * Starts polling the open shards of `table`'s stream from their tips, calling `onChange` for every record, until
 * the scope closes. Returns once every shard has an iterator, so writes made after it are seen.
 */
export const watch = (
  clients: { readonly dynamodb: DynamoDBClient; readonly streams: DynamoDBStreamsClient },
  table: string,
  onChange: (change: PeerChange) => void,
  pollMillis = teleportPollMillis
): Effect.Effect<void, PeerFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const description = yield* call("DescribeTable", () =>
      clients.dynamodb.send(new DescribeTableCommand({ TableName: table })))
    const arn = description.Table?.LatestStreamArn
    if (arn === undefined) {
      return yield* new PeerFailure({ operation: "DescribeTable", reason: "no stream" })
    }
    const stream = yield* call("DescribeStream", () =>
      clients.streams.send(new DescribeStreamCommand({ StreamArn: arn })))
    const open = (stream.StreamDescription?.Shards ?? []).filter((shard) =>
      shard.SequenceNumberRange?.EndingSequenceNumber === undefined
    )
    for (const shard of open) {
      const first = yield* call("GetShardIterator", () =>
        clients.streams.send(
          new GetShardIteratorCommand({ StreamArn: arn, ShardId: shard.ShardId!, ShardIteratorType: "LATEST" })
        ))
      let iterator = first.ShardIterator
      yield* Effect.forkScoped(Effect.gen(function*() {
        while (iterator !== undefined) {
          const current = iterator
          const page = yield* call("GetRecords", () =>
            clients.streams.send(new GetRecordsCommand({ ShardIterator: current })))
          for (const record of page.Records ?? []) {
            const image = record.dynamodb?.NewImage
            const key = image?.["FullPath"]?.S
            if (key !== undefined) {
              onChange({ key, revision: image?.["Revision"]?.S ?? "" })
            }
          }
          iterator = page.NextShardIterator
          if ((page.Records ?? []).length === 0) {
            yield* Effect.sleep(pollMillis)
          }
        }
      }))
    }
  })
