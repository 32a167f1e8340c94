/**
 * Watches: live feeds of a key space's changes from the table's stream. The
 * first element is `Init` (from then on nothing is missed), then `Put` with
 * the decrypted item, `Delete` and `Expire` with key and revision, in per-key
 * order, each once (a key's missing events are read from the table). All
 * watches of a process share one stream reader (DynamoDB allows
 * only two readers per shard); a watch that cannot keep up with its bounded
 * buffer fails with `WatcherOverflow` instead of growing without bound.
 * This process's own writes reach its (non-resumed) watches at acknowledgement when their keys' order allows
 * (see `WatchFeed`), and their stream records are then dropped as repeats.
 */
import { Cause, Context, Deferred, Effect, Fiber, Layer, Queue, Schedule, Schema, Stream } from "effect"
import type { BadParameter } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import { callerKey, carriesValue, itemRevision } from "../../domain/Event.ts"
import type { Item } from "../../domain/Item.ts"
import { EventTable } from "../../infra/EventTable.ts"
import type { ReadError } from "../../infra/EventTable.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import { locate } from "../../infra/streams/StreamEvents.ts"
import type { StreamsError } from "../../infra/streams/StreamsApi.ts"
import { StreamsApi } from "../../infra/streams/StreamsApi.ts"
import type * as KeyOrder from "../collections/KeyOrder.ts"
import * as History from "./History.ts"
import { checkWatchOptions } from "./StoreInput.ts"
import * as WatchFeed from "./WatchFeed.ts"
import * as WatchSource from "./WatchSource.ts"
import { WriteAcks } from "./WriteAcks.ts"
import type { Acknowledgement } from "./WriteAcks.ts"

/** Where a watch got to: per shard, the last record delivered. Resume a watch from it. */
export interface WatchPosition {
  readonly arn: string
  readonly shards: Readonly<Record<string, string>>
  /**
   * Writes of this process delivered before the stream brought them (key to seq): a watch resumed from here skips
   * each key's events up to its seq (the shard positions do not cover them yet).
   */
  readonly keys?: Readonly<Record<string, number>> | undefined
}

/** What a watch delivers. */
export type WatchEvent =
  | { readonly _tag: "Init" }
  | { readonly _tag: "Put"; readonly item: Item; readonly seq: number; readonly position: WatchPosition }
  | {
    readonly _tag: "Delete"
    readonly key: string
    readonly revision: string
    readonly seq: number
    readonly position: WatchPosition
  }
  | {
    readonly _tag: "Expire"
    readonly key: string
    readonly revision: string
    readonly seq: number
    readonly position: WatchPosition
  }

/** The watch fell further behind than its buffer holds; re-read what it needs and watch again. */
export class WatcherOverflow extends Schema.TaggedError<WatcherOverflow>()("WatcherOverflow", {
  capacity: Schema.Number
}) {
  override get message() {
    return `the watcher fell more than ${this.capacity} events behind`
  }
}

/**
 * Events this watch should have seen are gone (the stream trimmed them before they were read, or a key's missing
 * events are no longer stored); re-read and watch again.
 */
export class WatchGap extends Schema.TaggedError<WatchGap>()("WatchGap", {
  shardId: Schema.String,
  /** The key whose events are missing, when only one key's are. */
  key: Schema.optional(Schema.String)
}) {
  override get message() {
    return this.key === undefined
      ? `events of stream shard ${this.shardId} were trimmed before the watch read them`
      : `events of ${this.key} that the stream did not bring are no longer stored`
  }
}

/** What to watch; options a watch cannot honour fail it with `BadParameter` before anything is read. */
export interface WatchOptions {
  /**
   * Keys starting with any of these; all keys when empty or absent, and `""` covers every key too. Each other
   * prefix must be shaped like a key (`Key.validate`: no lone surrogate, no NUL, no more bytes than a key).
   */
  readonly prefixes?: ReadonlyArray<string> | undefined
  /** Events buffered for a slow consumer before it overflows (a whole number, 1 or more; default 1024). */
  readonly capacity?: number | undefined
  /** Continue after a position an earlier watch returned (at-least-once: events may repeat, none is skipped). */
  readonly resumeFrom?: WatchPosition | undefined
}

/** Failures of a watch: its options refused (before anything is read), or the feed broken. */
export type WatchError = BadParameter | WatcherOverflow | WatchGap | StreamsError | ReadError

/** What a watch delivers after `Init`: a change of one key. */
export type Change = Exclude<WatchEvent, { readonly _tag: "Init" }>

/** The change a watch delivers for an event found at `position`. */
export const toWatchEvent = (event: Event, position: WatchPosition): Change =>
  carriesValue(event)
    ? {
      _tag: "Put",
      seq: event.seq,
      position,
      item: { key: callerKey(event), value: event.value!, expires: event.expires, revision: itemRevision(event) }
    }
    : {
      _tag: event.op === "expire" ? "Expire" : "Delete",
      key: callerKey(event),
      revision: event.revision,
      seq: event.seq,
      position
    }

/** Whether a watch of `prefixes` (all keys when none) covers a key. */
export const matches = (prefixes: ReadonlyArray<string> | undefined, key: string): boolean =>
  prefixes === undefined || prefixes.length === 0 || prefixes.some((prefix) => key.startsWith(prefix))

interface Subscriber {
  /** What the watch asked for, matched against the keys its callers know (real keys of sealed ones). */
  readonly prefixes: ReadonlyArray<string> | undefined
  /** The same as stored keys start (see `KeySealing.storedPrefixes`), matched before anything is decrypted. */
  readonly stored: ReadonlyArray<string> | undefined
  readonly queue: Queue.Queue<WatchEvent, WatchError | Cause.Done>
  readonly capacity: number
}

/** Hands a change to every subscriber watching its key; one whose buffer is full fails with `WatcherOverflow`. */
const deliverTo = (subscribers: Set<Subscriber>) => (delivered: Change) => {
  // A change names the key its callers know (the real key of a sealed one): matched by the real prefixes.
  const key = delivered._tag === "Put" ? delivered.item.key : delivered.key
  for (const subscriber of subscribers) {
    if (!matches(subscriber.prefixes, key)) continue
    if (!Queue.offerUnsafe(subscriber.queue, delivered)) {
      subscribers.delete(subscriber)
      Queue.failCauseUnsafe(subscriber.queue, Cause.fail(new WatcherOverflow({ capacity: subscriber.capacity })))
    }
  }
}

/** Runs a source and hands every decoded event to the subscribers, in per-key order, each once. */
const pump = (
  table: EventTable["Service"],
  area: HistoryArea["Service"],
  source: WatchSource.WatchSource,
  subscribers: Set<Subscriber>,
  feed: WatchFeed.WatchFeed = WatchFeed.make()
) => {
  const order = feed.order
  const failWatchersOf = (key: string, error: WatchError) => {
    for (const subscriber of subscribers) {
      if (!matches(subscriber.stored, key)) continue
      subscribers.delete(subscriber)
      Queue.failCauseUnsafe(subscriber.queue, Cause.fail(error))
    }
  }
  const deliver = deliverTo(subscribers)
  return source.batches.pipe(
    Stream.runForEach((batch) =>
      Effect.gen(function*() {
        if (batch._tag === "Started") return
        if (batch._tag === "Trimmed") {
          // Events were lost to the stream's 24-hour retention: every watcher must re-read and watch again.
          yield* Effect.logWarning(`watch: shard ${batch.shardId} was trimmed; failing its watchers`)
          for (const subscriber of subscribers) {
            Queue.failCauseUnsafe(subscriber.queue, Cause.fail(new WatchGap({ shardId: batch.shardId })))
          }
          subscribers.clear()
          return yield* batch.ack
        }
        for (const record of batch.records) {
          const before: WatchPosition = {
            arn: batch.arn,
            shards: { ...source.positions },
            keys: WatchFeed.aheadOf(feed)
          }
          if (batch.advances !== false) WatchSource.advance(source.positions, batch.shardId, record.sequenceNumber)
          const located = locate(table, record)
          if (located === undefined) {
            continue
          }
          WatchFeed.met(feed, located.key, located.seq)
          const verdict = order.check(located.key, located.seq)
          if (verdict._tag === "Duplicate") continue
          // Every key's order is kept, watched or not, so a watch that starts later meets no stale gap.
          order.delivered(located.key, located.seq)
          // Only records somebody watches are decrypted.
          if (![...subscribers].some((subscriber) => matches(subscriber.stored, located.key))) continue
          // Until this event is delivered, an own write of its key must wait for the stream (deliverOwnWrites).
          feed.busy.add(located.key)
          yield* handOn(batch, located, verdict, before).pipe(
            Effect.ensuring(Effect.sync(() => feed.busy.delete(located.key)))
          )
        }
        yield* batch.ack
      })
    )
  )

  /** Delivers one record's event to its watchers, after the key's missing events when it jumped over some. */
  function handOn(
    batch: Extract<WatchSource.WatchBatch, { readonly _tag: "Records" }>,
    located: NonNullable<ReturnType<typeof locate>>,
    verdict: KeyOrder.Verdict,
    before: WatchPosition
  ): Effect.Effect<void, WatchError> {
    return Effect.gen(function*() {
      if (verdict._tag === "Gap") {
        // Events of this key the stream has not brought (yet): read them from the table, so order holds.
        const read = yield* History.eventsBetween(table, area, located.key, verdict.after, located.seq).pipe(
          Effect.retry({ schedule: Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 3 })) }),
          Effect.result
        )
        // Reading one key's past failed: only that key's watchers end (they re-read), the others go on.
        if (read._tag === "Failure") {
          failWatchersOf(located.key, read.failure)
          return
        }
        const between = read.success
        if (!between.complete) {
          yield* Effect.logWarning(
            `watch: events of ${located.key} between seq ${verdict.after} and ${located.seq} are gone; failing its watchers`
          )
          failWatchersOf(located.key, new WatchGap({ shardId: batch.shardId, key: located.key }))
          return
        }
        for (const skipped of between.unreadable) {
          yield* Effect.logWarning(`watch: skipping ${located.key} at seq ${skipped.seq}: ${skipped.reason}`)
        }
        for (const missing of between.events) deliver(toWatchEvent(missing, before))
      }
      const decoded = yield* Effect.result(table.decode(located))
      if (decoded._tag === "Failure") {
        const error = decoded.failure
        // One unreadable record must not end every watch: a shredded value is skipped, a tampered one reported.
        if (error._tag === "Shredded") return
        if (error._tag === "DecryptionFailed") {
          yield* Effect.logError(`watch: skipping ${error.key} at seq ${error.seq}: ${error.reason}`)
          return
        }
        return yield* Effect.fail(error)
      }
      deliver(
        toWatchEvent(decoded.success, {
          arn: batch.arn,
          shards: { ...source.positions },
          keys: WatchFeed.aheadOf(feed)
        })
      )
    })
  }
}

/** Where a store's watches read the stream. */
export interface WatchesOptions {
  /**
   * The worker that serves watches (see `WatchSource.relayed`); without it each process reads the stream itself,
   * one more reader per shard.
   */
  readonly relay?: WatchSource.RelayTarget | undefined
}

/** Watches of one store instance. */
export class Watches extends Context.Service<Watches, {
  /**
   * A watch; `stored` are its prefixes as stored keys start, when some lie under sealed prefixes (the store's
   * edge computes them): records are matched by them before decrypting, deliveries by the real prefixes after.
   */
  readonly watch: (
    options?: WatchOptions,
    stored?: ReadonlyArray<string> | undefined
  ) => Stream.Stream<WatchEvent, WatchError>
}>()("dynastate/Watches") {
  /** Watches over the event table's stream, read by this process; the shared reader runs while any watch does. */
  static readonly layer: Layer.Layer<Watches, never, EventTable | StreamsApi | HistoryArea | WriteAcks> = Layer
    .suspend(() => Watches.layerWith({}))

  /** Watches reading the stream as `options` say: through the worker's relay, or in this process. */
  static readonly layerWith = (
    options: WatchesOptions
  ): Layer.Layer<Watches, never, EventTable | StreamsApi | HistoryArea | WriteAcks> =>
    Layer.effect(
      Watches,
      Effect.gen(function*() {
        const table = yield* EventTable
        const area = yield* HistoryArea
        const api = yield* StreamsApi
        const acks = yield* WriteAcks
        const services = <A, E>(effect: Effect.Effect<A, E, StreamsApi | EventTable>) =>
          effect.pipe(Effect.provideService(StreamsApi, api), Effect.provideService(EventTable, table))
        const layerScope = yield* Effect.scope
        const relay = options.relay
        const openSource = (resumeFrom: WatchPosition | undefined) =>
          relay === undefined ? WatchSource.own(resumeFrom) : WatchSource.relayed(relay, resumeFrom)
        const subscribers = new Set<Subscriber>()
        interface Shared {
          readonly ready: Deferred.Deferred<void, WatchError>
          fiber: Fiber.Fiber<void> | undefined
          /** This process's acknowledged writes go to the watchers from when the reader has started (see `Init`). */
          ownWrites: ((ack: Acknowledgement) => void) | undefined
        }
        let shared: Shared | undefined
        // Watchers need every write as it is acknowledged, never a lookup by revision: nothing to remember for them.
        yield* acks.subscribe((ack) => shared?.ownWrites?.(ack), { remember: false })

        const failAll = (cause: Cause.Cause<WatchError>) =>
          Effect.sync(() => {
            for (const subscriber of subscribers) Queue.failCauseUnsafe(subscriber.queue, cause)
            subscribers.clear()
          })

        // Started without yielding first, so concurrent first watches share one reader.
        const ensureShared = Effect.suspend((): Effect.Effect<Shared> => {
          if (shared !== undefined) return Effect.succeed(shared)
          const state: Shared = {
            ready: Deferred.makeUnsafe<void, WatchError>(),
            fiber: undefined,
            ownWrites: undefined
          }
          shared = state
          return Effect.gen(function*() {
            const source = yield* services(openSource(undefined))
            const feed = WatchFeed.make()
            state.fiber = yield* pump(table, area, source, subscribers, feed).pipe(
              Effect.catchCause((cause) =>
                Effect.sync(() => {
                  if (shared === state) shared = undefined
                  // Watches still waiting for the reader to start must not wait forever.
                  Deferred.doneUnsafe(state.ready, Effect.failCause(cause))
                }).pipe(Effect.andThen(failAll(cause)))
              ),
              Effect.forkIn(layerScope)
            )
            yield* Deferred.await(source.started).pipe(
              Effect.andThen(Effect.sync(() => {
                // Without a stream there is no position to give an event, and the watch delivers nothing anyway.
                if (source.arn() === undefined || shared !== state) return
                const deliver = deliverTo(subscribers)
                state.ownWrites = WatchFeed.deliverOwnWrites(
                  feed,
                  (event) =>
                    deliver(
                      toWatchEvent(event, {
                        arn: source.arn()!,
                        shards: { ...source.positions },
                        keys: WatchFeed.aheadOf(feed)
                      })
                    )
                )
              })),
              Effect.andThen(Deferred.succeed(state.ready, undefined)),
              Effect.forkIn(layerScope)
            )
            return state
          }).pipe(
            Effect.catchCause((cause) =>
              Effect.sync(() => {
                if (shared === state) shared = undefined
                Deferred.doneUnsafe(state.ready, Effect.failCause(cause))
                return state
              })
            )
          )
        })

        const leave = (subscriber: Subscriber) =>
          Effect.suspend(() => {
            subscribers.delete(subscriber)
            const state = shared
            if (subscribers.size > 0 || state === undefined) return Effect.void
            // The last watch closed: stop polling the stream until the next one.
            shared = undefined
            return state.fiber === undefined ? Effect.void : Fiber.interrupt(state.fiber)
          })

        const watch = (
          options: WatchOptions = {},
          stored: ReadonlyArray<string> | undefined = options.prefixes
        ): Stream.Stream<WatchEvent, WatchError> =>
          Stream.unwrap(Effect.gen(function*() {
            yield* checkWatchOptions(options)
            const capacity = options.capacity ?? 1024
            const queue = yield* Queue.bounded<WatchEvent, WatchError | Cause.Done>(capacity)
            const subscriber: Subscriber = { prefixes: options.prefixes, stored, queue, capacity }
            if (options.resumeFrom !== undefined) {
              const own = new Set([subscriber])
              const source = yield* services(openSource(options.resumeFrom))
              const feed = WatchFeed.make()
              for (const [key, seq] of Object.entries(options.resumeFrom.keys ?? {})) feed.order.delivered(key, seq)
              yield* pump(table, area, source, own, feed).pipe(
                Effect.catchCause((cause) => Queue.failCause(queue, cause)),
                Effect.forkScoped
              )
              yield* Deferred.await(source.started)
            } else {
              subscribers.add(subscriber)
              yield* Effect.addFinalizer(() => leave(subscriber))
              const state = yield* ensureShared
              yield* Deferred.await(state.ready)
            }
            return Stream.concat(Stream.make({ _tag: "Init" } as WatchEvent), Stream.fromQueue(queue))
          }))

        return Watches.of({ watch })
      })
    )
}
