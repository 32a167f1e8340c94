/**
 * Reads one shard from a position until it ends: every page is delivered,
 * including the last one that comes with no next iterator (Teleport dropped
 * those). An expired iterator resumes after the last record delivered;
 * trimmed data is reported to the consumer (who must rebuild) and reading goes
 * on from the oldest record left. Polling is adaptive: no pause while records
 * keep coming, the idle interval when the shard is quiet, and bounded,
 * jittered backoff on throttling and server errors.
 */
import { Clock, Effect, Option, Random, Stream } from "effect"
import type { StreamRecord, StreamsError } from "./StreamsApi.ts"
import { StreamsApi } from "./StreamsApi.ts"
import type { ShardPosition } from "./StreamsApi.ts"

/** What a shard reader delivers. */
export type ShardEvent =
  | { readonly _tag: "Started"; readonly shardId: string }
  | {
    readonly _tag: "Records"
    readonly shardId: string
    /** Empty when the reader has just caught up with the shard's newest record. */
    readonly records: ReadonlyArray<StreamRecord>
    /** The shard is closed and these are its last records. */
    readonly ended: boolean
  }
  | { readonly _tag: "Trimmed"; readonly shardId: string }

/** Polling and backoff settings. */
export interface PollingOptions {
  /** Pause between polls of a quiet shard. */
  readonly idleMillis: number
  /** Longest backoff after throttling or a server error. */
  readonly maxBackoffMillis: number
}

/**
 * Defaults: a quiet shard is polled 5 times a second (Lambda: 4, Teleport: 1), so a watcher sees another process's
 * write within about 200 ms plus the stream's own delay (p99 231 ms on DynamoDB Local, 266 ms at 250 ms polling).
 */
export const defaultPolling: PollingOptions = { idleMillis: 200, maxBackoffMillis: 5_000 }

const retryable = (error: StreamsError) => error._tag === "Throttled" || error._tag === "StorageFailure"

interface ReaderState {
  iterator: string | undefined
  last: string | undefined
  ended: boolean
  failures: number
  idle: boolean
  started: boolean
  iteratorAt: number
}

/** The events of one shard from `position` to its end (or forever while it is open). */
export const readShard = (
  arn: string,
  shardId: string,
  position: ShardPosition,
  options: PollingOptions = defaultPolling
): Stream.Stream<ShardEvent, StreamsError, StreamsApi> =>
  Stream.unwrap(Effect.gen(function*() {
    const api = yield* StreamsApi
    const state: ReaderState = {
      iterator: undefined,
      last: undefined,
      ended: false,
      failures: 0,
      idle: false,
      started: false,
      iteratorAt: 0
    }
    const resumePosition = (): ShardPosition =>
      state.last === undefined ? position : { _tag: "After", sequenceNumber: state.last }

    const backoff = Effect.gen(function*() {
      state.failures++
      const ceiling = Math.min(options.maxBackoffMillis, 50 * 2 ** Math.min(state.failures, 10))
      yield* Effect.sleep(yield* Random.nextBetween(ceiling / 2, ceiling))
    })

    const poll: Effect.Effect<ReadonlyArray<ShardEvent>, StreamsError> = Effect.gen(
      function*(): Effect.fn.Return<ReadonlyArray<ShardEvent>, StreamsError> {
        if (state.idle) yield* Effect.sleep(options.idleMillis)
        if (state.iterator === undefined) {
          const first = !state.started
          state.iterator = yield* api.getShardIterator(arn, shardId, resumePosition())
          state.iteratorAt = yield* Clock.currentTimeMillis
          state.started = true
          if (state.iterator === undefined) {
            state.ended = true
            return [{ _tag: "Records", shardId, records: [], ended: true } as const]
          }
          // Reading from "latest" starts when the iterator is made: say so, so a watcher can announce it is live.
          if (first) return [{ _tag: "Started", shardId } as const]
        }
        const page = yield* api.getRecords(shardId, state.iterator)
        state.failures = 0
        state.iterator = page.nextIterator
        state.ended = page.nextIterator === undefined
        const caughtUp = page.records.length === 0 && !state.ended && !state.idle
        state.idle = page.records.length === 0 && !state.ended
        const lastRecord = page.records[page.records.length - 1]
        if (lastRecord) state.last = lastRecord.sequenceNumber
        // The first empty page after records says the reader is at the shard's tip (lag 0), once per quiet spell.
        return page.records.length > 0 || state.ended || caughtUp
          ? [{ _tag: "Records", shardId, records: page.records, ended: state.ended } as const]
          : []
      }
    ).pipe(
      Effect.catchTag("IteratorExpired", () =>
        Effect.sync((): ReadonlyArray<ShardEvent> => {
          state.iterator = undefined
          state.idle = false
          return []
        })),
      Effect.catchTag("TrimmedData", () =>
        Effect.gen(function*(): Effect.fn.Return<ReadonlyArray<ShardEvent>> {
          const now = yield* Clock.currentTimeMillis
          // Nothing read yet from a fresh iterator that did not point after a record: nothing can have been
          // missed. (DynamoDB Local numbers records across tables and reports an iterator of an empty shard
          // as trimmed once the shard's first record arrives.)
          const nothingMissed = state.last === undefined && position._tag !== "After" && now - state.iteratorAt < 60_000
          state.iterator = undefined
          state.last = undefined
          position = { _tag: "TrimHorizon" }
          // Otherwise resume from the oldest record still there; the consumer rebuilds what it missed.
          return nothingMissed ? [] : [{ _tag: "Trimmed", shardId }]
        })),
      Effect.catchIf(retryable, (error) =>
        Effect.gen(function*() {
          yield* Effect.logWarning(`stream shard ${shardId}: ${error._tag}, backing off`)
          yield* backoff
          return [] as ReadonlyArray<ShardEvent>
        }))
    )

    return Stream.paginate(undefined, () =>
      poll.pipe(Effect.map((events) => [events, state.ended ? Option.none() : Option.some(undefined)] as const)))
  }))
