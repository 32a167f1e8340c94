/**
 * Reads a whole DynamoDB stream: discovers shards (paged, paced, re-synced
 * periodically and at once when a shard ends), respects lineage (a child
 * starts from its first record only after its parents were fully applied),
 * and follows the table to a new stream when streams are re-enabled.
 *
 * Which shards this process reads and where they start is the coordinator's
 * call: the projection worker's coordinator holds leases and checkpoints in
 * DynamoDB; a watcher's lives in memory. A batch is only acknowledged by the
 * consumer after it applied it, and only acknowledged progress counts.
 */
import { Clock, Effect, Fiber, Queue, Stream } from "effect"
import type { Scope } from "effect"
import { parentsFirst, readyShards } from "../../domain/ShardLineage.ts"
import type { PollingOptions, ShardEvent } from "./ShardReader.ts"
import { defaultPolling, readShard } from "./ShardReader.ts"
import type { ShardDescription, ShardPosition, StreamsError } from "./StreamsApi.ts"
import { StreamsApi } from "./StreamsApi.ts"

/** Decides which shards this process reads, and records what was applied. */
export interface ShardCoordinator<E> {
  /**
   * Where to read a shard from, or `undefined` when this process must not read it (now). `reading`
   * numbers this reading of the shard (a shard read again gets a new one); its batches carry it.
   */
  readonly acquire: (
    arn: string,
    shard: ShardDescription,
    reading: number
  ) => Effect.Effect<ShardPosition | undefined, E>
  /** Whether every record of the shard was applied, by anyone. */
  readonly isFinished: (arn: string, shardId: string) => Effect.Effect<boolean, E>
  /** The consumer applied records up to `sequenceNumber`; `ended` when that was the shard's last. */
  readonly checkpoint: (
    arn: string,
    shardId: string,
    sequenceNumber: string | undefined,
    ended: boolean,
    /** The reading (see `acquire`) whose batch this is. */
    reading?: number
  ) => Effect.Effect<void, E>
  /**
   * Whether this process still reads a shard it acquired (without it: until the shard ends). Once it
   * says no, the reader offers no more batches of that reading and stops reading the shard, which may
   * be acquired again later; batches already buffered are still delivered, and the consumer tells
   * them by their `reading`.
   */
  readonly keeps?: ((arn: string, shardId: string) => boolean) | undefined
}

/** A delivery from the stream; `ack` after applying it. */
export type StreamBatch<E> = ShardEvent & {
  readonly arn: string
  /** The reading of the shard this batch comes from (see `ShardCoordinator.acquire`). */
  readonly reading: number
  readonly ack: Effect.Effect<void, E>
}

/** A shard being read by this reader. */
interface Reading {
  readonly arn: string
  readonly reading: number
  fiber?: Fiber.Fiber<unknown, unknown>
}

/** Discovery and polling settings. */
export interface StreamReaderOptions {
  readonly polling: PollingOptions
  /** How often the shard listing is re-read even when nothing ended. */
  readonly resyncMillis: number
  /** Batches buffered ahead of the consumer. */
  readonly buffer: number
}

/** Defaults. */
export const defaultStreamReaderOptions: StreamReaderOptions = {
  polling: defaultPolling,
  resyncMillis: 10_000,
  buffer: 16
}

/** Every shard of a stream, all pages. `DescribeStream` is paced by the `StreamsApi` service. */
export const listShards = (arn: string) =>
  Effect.gen(function*() {
    const api = yield* StreamsApi
    const shards: Array<ShardDescription> = []
    let start: string | undefined
    do {
      const page = yield* api.describeStream(arn, start)
      shards.push(...page.shards)
      start = page.lastEvaluatedShardId
    } while (start !== undefined)
    return shards
  })

/**
 * The batches of a table's stream for this coordinator, until the scope
 * closes. Fails only on what retrying cannot fix (the coordinator's errors,
 * or a table without a stream).
 */
export const readStream = <E>(
  table: string,
  coordinator: ShardCoordinator<E>,
  options: StreamReaderOptions = defaultStreamReaderOptions
): Stream.Stream<StreamBatch<E>, E | StreamsError, StreamsApi> =>
  Stream.unwrap(Effect.gen(function*() {
    const api = yield* StreamsApi
    const out = yield* Queue.bounded<StreamBatch<E>, E | StreamsError>(options.buffer)
    const wake = yield* Queue.sliding<void>(1)
    const active = new Set<string>()
    const finished = new Set<string>()
    // The running reading of each shard, so one the coordinator no longer keeps can be stopped while idle.
    const readers = new Map<string, Reading>()
    let readings = 0
    const keeps = (arn: string, shardId: string) => coordinator.keeps === undefined || coordinator.keeps(arn, shardId)
    const forget = (shardId: string, reading: number) => {
      if (readers.get(shardId)?.reading !== reading) return
      readers.delete(shardId)
      active.delete(shardId)
    }

    const startReader = (
      streamArn: string,
      shard: ShardDescription,
      position: ShardPosition,
      reading: number,
      scope: Scope.Scope
    ) =>
      Effect.gen(function*() {
        active.add(shard.shardId)
        const reader: Reading = { arn: streamArn, reading }
        readers.set(shard.shardId, reader)
        let last: string | undefined
        reader.fiber = yield* readShard(streamArn, shard.shardId, position, options.polling).pipe(
          Stream.takeWhile(() => keeps(streamArn, shard.shardId)),
          Stream.runForEach((event) => {
            if (event._tag === "Records") {
              const newest = event.records[event.records.length - 1]?.sequenceNumber
              if (newest !== undefined) last = newest
            }
            const upTo = last
            const ack = coordinator.checkpoint(
              streamArn,
              shard.shardId,
              upTo,
              event._tag === "Records" && event.ended,
              reading
            ).pipe(
              Effect.andThen(Effect.sync(() => {
                if (event._tag === "Records" && event.ended) {
                  finished.add(shard.shardId)
                  active.delete(shard.shardId)
                  forget(shard.shardId, reading)
                  Queue.offerUnsafe(wake, undefined)
                }
              }))
            )
            return Queue.offer(out, { ...event, arn: streamArn, reading, ack })
          }),
          // The coordinator let the shard go (an ended shard's reading is forgotten when its last batch is acknowledged).
          Effect.andThen(Effect.sync(() => {
            if (!keeps(streamArn, shard.shardId)) forget(shard.shardId, reading)
          })),
          Effect.catchTag("StreamGone", () =>
            Effect.sync(() => {
              active.delete(shard.shardId)
              forget(shard.shardId, reading)
            })),
          Effect.catchCause((cause) => Queue.failCause(out, cause)),
          Effect.forkIn(scope)
        )
      })

    // Streams in the order the table had them; an older one is read to its end before the next starts.
    const arns: Array<string> = []

    const discoverStream = (streamArn: string, scope: Scope.Scope) =>
      Effect.gen(function*() {
        const shards = yield* listShards(streamArn).pipe(Effect.catchTag("StreamGone", () => Effect.succeed(undefined)))
        if (shards === undefined) return true
        for (const shard of shards) {
          if (
            !finished.has(shard.shardId) && !active.has(shard.shardId) &&
            (yield* coordinator.isFinished(streamArn, shard.shardId))
          ) {
            finished.add(shard.shardId)
          }
        }
        for (const shard of parentsFirst(readyShards(shards, finished, active))) {
          const reading = ++readings
          const position = yield* coordinator.acquire(streamArn, shard, reading)
          if (position !== undefined) yield* startReader(streamArn, shard, position, reading, scope)
        }
        return shards.every((shard) => finished.has(shard.shardId))
      })

    const discover = (scope: Scope.Scope) =>
      Effect.gen(function*() {
        // A shard let go while quiet would be polled until its next record: stop its reading now.
        for (const [shardId, reader] of [...readers]) {
          if (keeps(reader.arn, shardId)) continue
          if (reader.fiber !== undefined) yield* Fiber.interrupt(reader.fiber)
          forget(shardId, reader.reading)
        }
        const latest = yield* api.latestStreamArn(table)
        if (latest === undefined && arns.length === 0) {
          yield* Effect.logWarning(`table ${table} has no stream; waiting for one`)
          return
        }
        if (latest !== undefined && arns[arns.length - 1] !== latest) {
          if (arns.length > 0) {
            yield* Effect.logInfo(`table ${table} has a new stream ${latest}; the old one drains first`)
          }
          arns.push(latest)
        }
        while (arns.length > 0) {
          const drained = yield* discoverStream(arns[0]!, scope)
          // The newest stream is never done; an older one is dropped once every shard of it was applied.
          if (!drained || arns.length === 1) return
          arns.shift()
        }
      })

    const scope = yield* Effect.scope
    yield* Effect.gen(function*() {
      while (true) {
        yield* discover(scope).pipe(
          Effect.catchIf(
            (error): error is Extract<typeof error, { _tag: "Throttled" | "StorageFailure" }> =>
              typeof error === "object" && error !== null && "_tag" in error &&
              (error._tag === "Throttled" || error._tag === "StorageFailure"),
            (error) => Effect.logWarning(`stream discovery for ${table} failed (${error._tag}); retrying`)
          )
        )
        const started = yield* Clock.currentTimeMillis
        yield* Effect.race(Queue.take(wake), Effect.sleep(options.resyncMillis))
        // A burst of shard ends should not turn into a burst of listings.
        const elapsed = (yield* Clock.currentTimeMillis) - started
        if (elapsed < 100) yield* Effect.sleep(100 - elapsed)
      }
    }).pipe(Effect.catchCause((cause) => Queue.failCause(out, cause)), Effect.forkIn(scope))

    return Stream.fromQueue(out)
  }))
