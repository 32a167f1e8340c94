/**
 * Expiry: knows every live item's expiry and, when it comes, makes the store
 * record it (`get` on an expired key appends its one `expire` event,
 * conditionally, so several workers or a concurrent reader still make exactly
 * one). Watchers thus see expiries within moments, with nobody reading.
 */
import { Clock, Effect, Queue, Stream } from "effect"
import { carriesValue } from "../../../domain/Event.ts"
import type { Event } from "../../../domain/Event.ts"
import { EventTable } from "../../../infra/EventTable.ts"
import * as MinHeap from "../../collections/MinHeap.ts"
import * as NewestEvents from "../../store/NewestEvents.ts"
import { Store } from "../../store/Store.ts"
import * as Projection from "../Projection.ts"

interface Due {
  readonly key: string
  readonly expires: number
}

/** The expiry projection; its timer runs in the caller's scope. */
export const make = Effect.gen(function*() {
  const store = yield* Store
  const table = yield* EventTable
  const scheduled = new Map<string, number>()
  const queue = MinHeap.make((due: Due) => due.expires)
  const wake = yield* Queue.sliding<void>(1)

  const schedule = (key: string, expires: number | undefined) => {
    if (expires === undefined) {
      scheduled.delete(key)
      return
    }
    scheduled.set(key, expires)
    queue.push({ key, expires })
    // Keys kept alive over and over leave a superseded entry per keep-alive: drop them before they pile up.
    if (queue.size > 2 * scheduled.size + 1024) {
      queue.reset(Array.from(scheduled, ([scheduledKey, at]) => ({ key: scheduledKey, expires: at })))
    }
    Queue.offerUnsafe(wake, undefined)
  }

  const fire = (key: string) =>
    store.get(key).pipe(
      Effect.asVoid,
      Effect.catchTag("NotFound", () => Effect.void),
      Effect.catch((error) =>
        Effect.logWarning(`expiry of ${key} failed (${error._tag}); retrying shortly`).pipe(
          Effect.andThen(Clock.currentTimeMillis),
          Effect.map((now) => schedule(key, now + 1000))
        )
      )
    )

  const timer = Effect.gen(function*() {
    while (true) {
      const next = queue.peek()
      if (next === undefined) {
        yield* Queue.take(wake)
        continue
      }
      if (scheduled.get(next.key) !== next.expires) {
        queue.pop()
        continue
      }
      const now = yield* Clock.currentTimeMillis
      if (next.expires > now) {
        yield* Effect.race(Queue.take(wake), Effect.sleep(next.expires - now))
        continue
      }
      queue.pop()
      scheduled.delete(next.key)
      yield* fire(next.key)
    }
  })
  yield* Effect.forkScoped(timer)

  // Expired ones too: their expiry is recorded at once. A tombstone unschedules its key.
  const rebuild = NewestEvents.read(table, NewestEvents.allKeys, { include: "tombstones" }).pipe(
    Stream.runForEach((stored) =>
      Effect.sync(() => {
        const holdsValue = NewestEvents.mayBeLive(stored, Number.NEGATIVE_INFINITY)
        schedule(stored.key, holdsValue ? stored.expires : undefined)
      })
    )
  )

  return Projection.make({
    name: "expiry",
    prefixes: [],
    apply: (event: Event) => Effect.sync(() => schedule(event.key, carriesValue(event) ? event.expires : undefined)),
    rebuild
  })
})
