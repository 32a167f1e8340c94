/**
 * Helpers for driving `readStream` in tests: an in-memory coordinator that
 * records checkpoints, a background consumer that acknowledges every batch,
 * and a real-time wait.
 */
import { Effect, Stream } from "effect"
import type { ShardCoordinator, StreamReaderOptions } from "../../src/infra/streams/StreamReader.ts"
import { readStream } from "../../src/infra/streams/StreamReader.ts"
import type { ShardPosition } from "../../src/infra/streams/StreamsApi.ts"
import { StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import type { ScriptedStreams } from "./ScriptedStreams.ts"
import { labelOf } from "./ScriptedStreams.ts"

export const fast: StreamReaderOptions = {
  polling: { idleMillis: 10, maxBackoffMillis: 50 },
  resyncMillis: 200,
  buffer: 16
}

/** An in-memory coordinator: reads every shard from its checkpoint (or its first record) and records checkpoints. */
export const makeCoordinator = (start: Record<string, string> = {}) => {
  const positions = new Map(Object.entries(start))
  const finished = new Set<string>()
  const checkpoints: Array<{ shardId: string; sequenceNumber: string | undefined; ended: boolean }> = []
  const coordinator: ShardCoordinator<never> = {
    acquire: (_arn, shard) =>
      Effect.sync((): ShardPosition => {
        const after = positions.get(shard.shardId)
        return after === undefined ? { _tag: "TrimHorizon" } : { _tag: "After", sequenceNumber: after }
      }),
    isFinished: (_arn, shardId) => Effect.sync(() => finished.has(shardId)),
    checkpoint: (_arn, shardId, sequenceNumber, ended) =>
      Effect.sync(() => {
        checkpoints.push({ shardId, sequenceNumber, ended })
        if (sequenceNumber !== undefined) positions.set(shardId, sequenceNumber)
        if (ended) finished.add(shardId)
      })
  }
  return { coordinator, positions, finished, checkpoints }
}

export interface Log {
  /** Labels of the records, in the order they were acknowledged. */
  readonly labels: Array<string>
  /** `Started:<shard>`, `Trimmed:<shard>`, `Ended:<shard>`. */
  readonly events: Array<string>
  /** A shard each time its reader reached the shard's newest record (an empty batch). */
  readonly caughtUp: Array<string>
}

/**
 * Runs the reader in the background, acknowledging every batch (ack and log
 * together, uninterruptibly, so "logged" means "checkpointed"). A batch for
 * which `hold` returns true is never acknowledged (the consumer stalls there).
 */
export const consume = (
  script: ScriptedStreams,
  coordinator: ShardCoordinator<never>,
  options: StreamReaderOptions = fast,
  hold: (log: Log) => boolean = () => false
) =>
  Effect.gen(function*() {
    const log: Log = { labels: [], events: [], caughtUp: [] }
    const fiber = yield* readStream("scripted-table", coordinator, options).pipe(
      Stream.runForEach((batch) =>
        hold(log) ? Effect.never : batch.ack.pipe(
          Effect.andThen(Effect.sync(() => {
            if (batch._tag === "Records") {
              log.labels.push(...batch.records.map(labelOf))
              if (batch.records.length === 0 && !batch.ended) log.caughtUp.push(batch.shardId)
              if (batch.ended) log.events.push(`Ended:${batch.shardId}`)
            } else {
              log.events.push(`${batch._tag}:${batch.shardId}`)
            }
          })),
          Effect.uninterruptible
        )
      ),
      Effect.provideService(StreamsApi, script.api),
      Effect.forkChild
    )
    return { log, fiber }
  })

/** Waits (real time) until `condition` holds; false after `millis`. */
export const eventually = (condition: () => boolean, millis = 10_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (!condition()) {
      if (Date.now() > deadline) return false
      yield* Effect.sleep(5)
    }
    return true
  })

/** Lets forked fibers run without moving the (test) clock. */
export const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow, { discard: true })
export const hasAll = (log: Log, labels: ReadonlyArray<string>) => () =>
  labels.every((label) => log.labels.includes(label))
export const labels = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`)
export const only = (log: Log, prefix: string) => log.labels.filter((label) => label.startsWith(prefix))
