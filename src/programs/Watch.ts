/**
 * Watches: live feeds of a key space's changes from the table's stream. The
 * first element is `Init` (from then on nothing is missed), then `Put` with
 * the decrypted item, `Delete` and `Expire` with key and revision, in per-key
 * order. All watches of a process share one stream reader (DynamoDB allows
 * only two readers per shard); a watch that cannot keep up with its bounded
 * buffer fails with `WatcherOverflow` instead of growing without bound.
 */
import { Cause, Context, Deferred, Effect, Layer, Queue, Schema, Stream } from "effect"
import type { Scope } from "effect"
import type { Event } from "../domain/Event.ts"
import { carriesValue, itemRevision } from "../domain/Event.ts"
import type { Item } from "../domain/Item.ts"
import * as SortKey from "../domain/SortKey.ts"
import { Attr } from "../infra/EventRecord.ts"
import { EventTable } from "../infra/EventTable.ts"
import type { ReadError } from "../infra/EventTable.ts"
import type { StreamBatch, ShardCoordinator } from "../infra/streams/StreamReader.ts"
import { listShards, readStream } from "../infra/streams/StreamReader.ts"
import type { ShardPosition, StreamRecord, StreamsError } from "../infra/streams/StreamsApi.ts"
import { StreamsApi } from "../infra/streams/StreamsApi.ts"

/** Where a watch got to: per shard, the last record delivered. Resume a watch from it. */
export interface WatchPosition {
  readonly arn: string
  readonly shards: Readonly<Record<string, string>>
}

/** What a watch delivers. */
export type WatchEvent =
  | { readonly _tag: "Init" }
  | { readonly _tag: "Put"; readonly item: Item; readonly seq: number; readonly position: WatchPosition }
  | { readonly _tag: "Delete"; readonly key: string; readonly revision: string; readonly seq: number; readonly position: WatchPosition }
  | { readonly _tag: "Expire"; readonly key: string; readonly revision: string; readonly seq: number; readonly position: WatchPosition }

/** The watch fell further behind than its buffer holds; re-read what it needs and watch again. */
export class WatcherOverflow extends Schema.TaggedError<WatcherOverflow>()("WatcherOverflow", {
  capacity: Schema.Number
}) {
  override get message() {
    return `the watcher fell more than ${this.capacity} events behind`
  }
}

/** What to watch. */
export interface WatchOptions {
  /** Keys starting with any of these; all keys when empty or absent. */
  readonly prefixes?: ReadonlyArray<string> | undefined
  /** Events buffered for a slow consumer before it overflows. */
  readonly capacity?: number | undefined
  /** Continue after a position an earlier watch returned (at-least-once: events may repeat, none is skipped). */
  readonly resumeFrom?: WatchPosition | undefined
}

/** Failures of a watch. */
export type WatchError = WatcherOverflow | StreamsError | ReadError

/** The event an item of the stream holds, if it is one of this namespace's events. */
export const eventOfRecord = (table: EventTable["Service"], record: StreamRecord) =>
  Effect.gen(function*() {
    const image = record.newImage
    if (record.eventName === "REMOVE" || image === undefined) return undefined
    if (image[Attr.partition]?.S !== table.location.namespace || image[Attr.sort]?.B === undefined) return undefined
    const { key, seq } = SortKey.decode(image[Attr.sort]!.B!)
    return yield* table.decode({ key, seq, item: image })
  })

const toWatchEvent = (event: Event, position: WatchPosition): WatchEvent =>
  carriesValue(event)
    ? {
      _tag: "Put",
      seq: event.seq,
      position,
      item: { key: event.key, value: event.value!, expires: event.expires, revision: itemRevision(event) }
    }
    : { _tag: event.op === "expire" ? "Expire" : "Delete", key: event.key, revision: event.revision, seq: event.seq, position }

const matches = (prefixes: ReadonlyArray<string> | undefined, key: string) =>
  prefixes === undefined || prefixes.length === 0 || prefixes.some((prefix) => key.startsWith(prefix))

/**
 * A reader positioned so that nothing after "now" (or after `resumeFrom`) is
 * missed: open shards from the latest record (or after the resumed position),
 * shards created later from their first record. `started` completes once
 * every open shard has its iterator.
 */
const liveCoordinator = (resumeFrom: WatchPosition | undefined) =>
  Effect.gen(function*() {
    const table = (yield* EventTable).location.table
    const api = yield* StreamsApi
    const arn = yield* api.latestStreamArn(table)
    const initial = arn === undefined ? [] : yield* listShards(arn)
    const open = new Set(initial.filter((shard) => shard.endingSequenceNumber === undefined).map((shard) => shard.shardId))
    const closedAtStart = new Set(initial.filter((shard) => !open.has(shard.shardId)).map((shard) => shard.shardId))
    const waiting = new Set(open)
    const started = yield* Deferred.make<void>()
    if (waiting.size === 0) yield* Deferred.succeed(started, undefined)
    const positions: Record<string, string> = { ...(resumeFrom?.arn === arn ? resumeFrom?.shards : {}) }
    const coordinator: ShardCoordinator<never> = {
      acquire: (_arn, shard) =>
        Effect.sync((): ShardPosition | undefined => {
          const resumed = positions[shard.shardId]
          if (resumed !== undefined) return { _tag: "After", sequenceNumber: resumed }
          if (closedAtStart.has(shard.shardId) && _arn === arn) return undefined
          if (open.has(shard.shardId) && _arn === arn && resumeFrom === undefined) return { _tag: "Latest" }
          return { _tag: "TrimHorizon" }
        }),
      isFinished: (_arn, shardId) => Effect.succeed(_arn === arn && closedAtStart.has(shardId) && positions[shardId] === undefined),
      checkpoint: (_arn, shardId, sequenceNumber) =>
        Effect.sync(() => {
          if (sequenceNumber !== undefined) positions[shardId] = sequenceNumber
        })
    }
    const onStarted = (shardId: string) =>
      Effect.suspend(() => (waiting.delete(shardId) && waiting.size === 0 ? Deferred.succeed(started, undefined) : Effect.void))
    return { coordinator, started, positions, arn, onStarted }
  })

interface Subscriber {
  readonly prefixes: ReadonlyArray<string> | undefined
  readonly queue: Queue.Queue<WatchEvent, WatchError | Cause.Done>
  readonly capacity: number
}

/** Runs a reader and hands every decoded event to the subscribers, in order. */
const pump = (
  table: EventTable["Service"],
  batches: Stream.Stream<StreamBatch<never>, StreamsError, StreamsApi>,
  live: Effect.Success<ReturnType<typeof liveCoordinator>>,
  subscribers: Set<Subscriber>
) =>
  batches.pipe(
    Stream.runForEach((batch) =>
      Effect.gen(function*() {
        if (batch._tag === "Started") return yield* live.onStarted(batch.shardId)
        if (batch._tag === "Trimmed") {
          yield* Effect.logWarning(`watch: shard ${batch.shardId} was trimmed; watchers must re-read`)
          return
        }
        for (const record of batch.records) {
          const event = yield* eventOfRecord(table, record)
          live.positions[batch.shardId] = record.sequenceNumber
          if (event === undefined) continue
          const delivered = toWatchEvent(event, { arn: batch.arn, shards: { ...live.positions } })
          for (const subscriber of subscribers) {
            if (!matches(subscriber.prefixes, event.key)) continue
            if (!Queue.offerUnsafe(subscriber.queue, delivered)) {
              subscribers.delete(subscriber)
              Queue.failCauseUnsafe(subscriber.queue, Cause.fail(new WatcherOverflow({ capacity: subscriber.capacity })))
            }
          }
        }
        yield* batch.ack
      })
    )
  )

/** Watches of one store instance. */
export class Watches extends Context.Service<Watches, {
  readonly watch: (options?: WatchOptions) => Stream.Stream<WatchEvent, WatchError>
}>()("dynastate/Watches") {
  /** Watches over the event table's stream; the shared reader runs while any watch does. */
  static readonly layer: Layer.Layer<Watches, never, EventTable | StreamsApi> = Layer.effect(Watches, Effect.gen(function*() {
    const table = yield* EventTable
    const api = yield* StreamsApi
    const services = Effect.provideService(StreamsApi, api)
    const layerScope = yield* Effect.scope
    const subscribers = new Set<Subscriber>()
    let shared: Deferred.Deferred<void, WatchError> | undefined

    const startShared = (scope: Scope.Scope) =>
      Effect.gen(function*() {
        const ready = yield* Deferred.make<void, WatchError>()
        const live = yield* liveCoordinator(undefined).pipe(Effect.provideService(EventTable, table), services)
        yield* pump(table, readStream(table.location.table, live.coordinator), live, subscribers).pipe(
          services,
          Effect.catchCause((cause) =>
            Effect.sync(() => {
              for (const subscriber of subscribers) Queue.failCauseUnsafe(subscriber.queue, cause)
              subscribers.clear()
              shared = undefined
            })
          ),
          Effect.forkIn(scope)
        )
        yield* Deferred.await(live.started).pipe(Effect.andThen(Deferred.succeed(ready, undefined)), Effect.forkIn(scope))
        return ready
      })

    const watch = (options: WatchOptions = {}): Stream.Stream<WatchEvent, WatchError> =>
      Stream.unwrap(Effect.gen(function*() {
        const capacity = options.capacity ?? 1024
        const queue = yield* Queue.bounded<WatchEvent, WatchError | Cause.Done>(capacity)
        const subscriber: Subscriber = { prefixes: options.prefixes, queue, capacity }
        if (options.resumeFrom !== undefined) {
          const own = new Set([subscriber])
          const live = yield* liveCoordinator(options.resumeFrom).pipe(Effect.provideService(EventTable, table), services)
          yield* pump(table, readStream(table.location.table, live.coordinator), live, own).pipe(
            services,
            Effect.catchCause((cause) => Queue.failCause(queue, cause)),
            Effect.forkScoped
          )
          yield* Deferred.await(live.started)
        } else {
          shared ??= yield* startShared(layerScope)
          subscribers.add(subscriber)
          yield* Effect.addFinalizer(() => Effect.sync(() => subscribers.delete(subscriber)))
          yield* Deferred.await(shared)
        }
        return Stream.concat(Stream.make({ _tag: "Init" } as WatchEvent), Stream.fromQueue(queue))
      }))

    return Watches.of({ watch })
  }))
}
