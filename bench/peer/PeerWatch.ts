/**
 * The peer's watch, as Teleport's DynamoDB backend does it: poll the table's stream, every shard from its tip,
 * once per poll period (Teleport's default is one second) while it is empty, and hand each record's new image on.
 */
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb"
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { DescribeStreamCommand, GetRecordsCommand, GetShardIteratorCommand } from "@aws-sdk/client-dynamodb-streams"
import type { _Record, DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
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
 * Starts polling `table`'s stream until the scope closes, calling `onChange` for every record: the shards open now
 * from their tips, shards that open later (DynamoDB rolls shards over) from their start. A failed poll is retried
 * after the last record seen. Returns once the shards open now are positioned, so later writes are seen.
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
    const openShards = Effect.map(
      call("DescribeStream", () =>
        clients.streams.send(new DescribeStreamCommand({ StreamArn: arn }))),
      (stream) =>
        (stream.StreamDescription?.Shards ?? []).filter((shard) =>
          shard.SequenceNumberRange?.EndingSequenceNumber === undefined
        ).map((shard) => shard.ShardId!)
    )
    const iterator = (shardId: string, after: string | undefined, from: "LATEST" | "TRIM_HORIZON") =>
      Effect.map(
        call("GetShardIterator", () =>
          clients.streams.send(
            new GetShardIteratorCommand(
              after === undefined
                ? { StreamArn: arn, ShardId: shardId, ShardIteratorType: from }
                : {
                  StreamArn: arn,
                  ShardId: shardId,
                  ShardIteratorType: "AFTER_SEQUENCE_NUMBER",
                  SequenceNumber: after
                }
            )
          )),
        (output) => output.ShardIterator
      )
    const deliver = (record: _Record) => {
      const image = record.dynamodb?.NewImage
      const key = image?.["FullPath"]?.S
      if (key !== undefined) onChange({ key, revision: image?.["Revision"]?.S ?? "" })
    }
    const poll = (shardId: string, first: string | undefined, from: "LATEST" | "TRIM_HORIZON") =>
      Effect.gen(function*() {
        let current = first
        let last: string | undefined
        while (true) {
          const page = yield* Effect.result(
            current === undefined
              ? Effect.succeed(undefined)
              : call("GetRecords", () => clients.streams.send(new GetRecordsCommand({ ShardIterator: current! })))
          )
          if (page._tag === "Failure" || page.success === undefined) {
            // DynamoDB Local refuses an iterator taken on an empty shard once records arrive ("read past the oldest
            // stream record"): with nothing read yet, the shard's start is where the missed records are.
            yield* Effect.sleep(pollMillis)
            const again = page._tag === "Failure" && last === undefined ? "TRIM_HORIZON" : from
            current = yield* Effect.orElseSucceed(iterator(shardId, last, again), () => undefined)
            continue
          }
          for (const record of page.success.Records ?? []) {
            last = record.dynamodb?.SequenceNumber ?? last
            deliver(record)
          }
          // A closed shard ends; its children are found by the discovery loop.
          if (page.success.NextShardIterator === undefined) return
          current = page.success.NextShardIterator
          if ((page.success.Records ?? []).length === 0) yield* Effect.sleep(pollMillis)
        }
      })
    const polled = new Set<string>()
    for (const shardId of yield* openShards) {
      polled.add(shardId)
      // DynamoDB Local resolves LATEST when the iterator is first used: use it once before returning.
      const latest = yield* iterator(shardId, undefined, "LATEST")
      const first = latest === undefined
        ? undefined
        : yield* call("GetRecords", () => clients.streams.send(new GetRecordsCommand({ ShardIterator: latest })))
      for (const record of first?.Records ?? []) deliver(record)
      yield* Effect.forkScoped(poll(shardId, first?.NextShardIterator, "LATEST"))
    }
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      yield* Effect.sleep(pollMillis)
      for (const shardId of yield* Effect.orElseSucceed(openShards, () => [])) {
        if (polled.has(shardId)) continue
        polled.add(shardId)
        yield* Effect.forkScoped(poll(shardId, undefined, "TRIM_HORIZON"))
      }
    })))
  })
