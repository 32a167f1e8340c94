/**
 * Watches of an in-memory store: every appended event is handed, as it is
 * appended, to the watches whose prefixes cover its key, so each key's events
 * arrive once and in seq order. A position is the event's place in the store's
 * global log, in the `WatchPosition` shape of the DynamoDB store (one "shard");
 * resuming replays the log after it. A watch whose bounded buffer fills fails
 * with `WatcherOverflow`, as the DynamoDB store's does.
 */
import { Cause, Effect, Queue, Stream } from "effect"
import type { Event } from "../../../domain/Event.ts"
import { checkWatchOptions } from "../StoreInput.ts"
import { matches, toWatchEvent, WatcherOverflow } from "../Watch.ts"
import type { WatchError, WatchEvent, WatchOptions, WatchPosition } from "../Watch.ts"
import * as MemoryLog from "./MemoryLog.ts"

/** The one "shard" of an in-memory store's positions: the global log. */
export const logShard = "log"

/** The position of the event at `position` of the log of the store named `arn`. */
export const positionOf = (arn: string, position: number): WatchPosition => ({
  arn,
  shards: { [logShard]: String(position) }
})

/**
 * Where a resumed watch starts replaying: after the position's event, or from
 * the start for a position of another store (as the DynamoDB store reads a
 * stream it has no position in from its oldest record: nothing is skipped).
 */
export const resumeAfter = (arn: string, position: WatchPosition): number => {
  const after = position.arn === arn ? Number(position.shards[logShard]) : Number.NaN
  return Number.isSafeInteger(after) && after >= 0 ? after : 0
}

interface Subscriber {
  readonly prefixes: ReadonlyArray<string> | undefined
  readonly queue: Queue.Queue<WatchEvent, WatchError | Cause.Done>
  readonly capacity: number
}

/** The watches of one in-memory store. */
export interface MemoryWatches {
  /** Hands an appended event to every watch of its key. Call it under the store's lock, right after appending. */
  readonly publish: (event: Event, position: number) => void
  /**
   * A watch; `locked` runs the registration under the store's lock, so that
   * no append falls between the replay of a resumed watch and its live feed.
   */
  readonly watch: (
    locked: <A>(effect: Effect.Effect<A>) => Effect.Effect<A>,
    options?: WatchOptions
  ) => Stream.Stream<WatchEvent, WatchError>
  /** Ends every watch: the store is closing. */
  readonly close: Effect.Effect<void>
}

/** Watches over a log; `arn` names the store in positions. */
export const make = (log: MemoryLog.MemoryLog, arn: string): MemoryWatches => {
  const subscribers = new Set<Subscriber>()

  const offer = (subscriber: Subscriber, event: Event, position: number) => {
    // A shredded value cannot be delivered; the DynamoDB store's watches skip it too.
    if (!matches(subscriber.prefixes, event.key) || event.shredded !== undefined) return
    if (!Queue.offerUnsafe(subscriber.queue, toWatchEvent(event, positionOf(arn, position)))) {
      subscribers.delete(subscriber)
      Queue.failCauseUnsafe(subscriber.queue, Cause.fail(new WatcherOverflow({ capacity: subscriber.capacity })))
    }
  }

  const publish = (event: Event, position: number) => {
    for (const subscriber of subscribers) offer(subscriber, event, position)
  }

  const watch = (
    locked: <A>(effect: Effect.Effect<A>) => Effect.Effect<A>,
    options: WatchOptions = {}
  ): Stream.Stream<WatchEvent, WatchError> =>
    Stream.unwrap(Effect.gen(function*() {
      yield* checkWatchOptions(options)
      const capacity = options.capacity ?? 1024
      const queue = yield* Queue.bounded<WatchEvent, WatchError | Cause.Done>(capacity)
      const subscriber: Subscriber = { prefixes: options.prefixes, queue, capacity }
      yield* locked(Effect.sync(() => {
        subscribers.add(subscriber)
        if (options.resumeFrom === undefined) return
        for (let position = resumeAfter(arn, options.resumeFrom) + 1; position <= log.appended.length; position++) {
          if (!subscribers.has(subscriber)) return
          offer(subscriber, MemoryLog.at(log, position), position)
        }
      }))
      yield* Effect.addFinalizer(() => Effect.sync(() => subscribers.delete(subscriber)))
      return Stream.concat(Stream.make({ _tag: "Init" } as WatchEvent), Stream.fromQueue(queue))
    }))

  const close = Effect.sync(() => {
    for (const subscriber of subscribers) Queue.endUnsafe(subscriber.queue)
    subscribers.clear()
  })

  return { publish, watch, close }
}
