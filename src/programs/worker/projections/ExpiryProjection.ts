/**
 * Expiry: knows every live item's expiry and, when it comes, makes the store
 * record it (`get` on an expired key appends its one `expire` event,
 * conditionally, so several workers or a concurrent reader still make exactly
 * one). Watchers thus see expiries within moments, with nobody reading.
 *
 * Events of a key may reach it out of order or twice (sibling shards of a
 * split read by different workers, a worker whose lease lapsed mid-batch, a
 * rebuild beside the stream): it keeps the seq of what it knows per key and
 * ignores events at or below it, so an older event can neither unschedule nor
 * postpone a newer expiry.
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

/** How many keys without an expiry (deleted, expired, never expiring) keep their seq for ordering; oldest out first. */
const rememberedSeqs = 100_000

/** The expiry projection; its timer runs in the caller's scope. */
export const make = Effect.gen(function*() {
  const store = yield* Store
  const table = yield* EventTable
  // Per key with an expiry: when, and the seq of the event that set it.
  const scheduled = new Map<string, { readonly expires: number; readonly seq: number }>()
  // Per recent key without one, the seq of the event that said so (bounded: out-of-order events arrive close together).
  const unscheduled = new Map<string, number>()
  const queue = MinHeap.make((due: Due) => due.expires)
  const wake = yield* Queue.sliding<void>(1)

  const knownSeq = (key: string) => scheduled.get(key)?.seq ?? unscheduled.get(key) ?? 0

  const schedule = (key: string, seq: number, expires: number | undefined) => {
    if (expires === undefined) {
      scheduled.delete(key)
      unscheduled.delete(key)
      unscheduled.set(key, seq)
      if (unscheduled.size > rememberedSeqs) unscheduled.delete(unscheduled.keys().next().value!)
      return
    }
    unscheduled.delete(key)
    scheduled.set(key, { expires, seq })
    queue.push({ key, expires })
    // Keys kept alive over and over leave a superseded entry per keep-alive: drop them before they pile up.
    if (queue.size > 2 * scheduled.size + 1024) {
      queue.reset(Array.from(scheduled, ([scheduledKey, at]) => ({ key: scheduledKey, expires: at.expires })))
    }
    Queue.offerUnsafe(wake, undefined)
  }

  /** Takes what an event (or the table's newest event, in a rebuild) says about a key, unless it knows newer. */
  const learn = (key: string, seq: number, expires: number | undefined) => {
    if (seq > knownSeq(key)) schedule(key, seq, expires)
  }

  const fire = (key: string) =>
    store.get(key).pipe(
      // Still live with a later expiry (a keep-alive this projection has not seen yet): come back then.
      Effect.flatMap((item) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          if (item.expires !== undefined && item.expires > now && !scheduled.has(key)) {
            schedule(key, knownSeq(key), item.expires)
          }
        })
      ),
      Effect.catchTag("NotFound", () => Effect.void),
      Effect.catch((error) =>
        Effect.logWarning(`expiry of ${key} failed (${error._tag}); retrying shortly`).pipe(
          Effect.andThen(Clock.currentTimeMillis),
          Effect.map((now) => schedule(key, knownSeq(key), now + 1000))
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
      if (scheduled.get(next.key)?.expires !== next.expires) {
        queue.pop()
        continue
      }
      const now = yield* Clock.currentTimeMillis
      if (next.expires > now) {
        yield* Effect.race(Queue.take(wake), Effect.sleep(next.expires - now))
        continue
      }
      queue.pop()
      // Its seq stays known: a late older event must not schedule the key again.
      schedule(next.key, knownSeq(next.key), undefined)
      yield* fire(next.key)
    }
  })
  yield* Effect.forkScoped(timer)

  // Expired ones too: their expiry is recorded at once. A tombstone unschedules its key.
  const rebuild = NewestEvents.read(table, NewestEvents.allKeys, { include: "tombstones" }).pipe(
    Stream.runForEach((stored) =>
      Effect.sync(() => {
        const holdsValue = NewestEvents.mayBeLive(stored, Number.NEGATIVE_INFINITY)
        learn(stored.key, stored.seq, holdsValue ? stored.expires : undefined)
      })
    )
  )

  return Projection.make({
    name: "expiry",
    prefixes: [],
    // It goes by seqs, ops and expiries: a large value's chunks are not read for it.
    readsValues: false,
    apply: (event: Event) =>
      Effect.sync(() => learn(event.key, event.seq, carriesValue(event) ? event.expires : undefined)),
    rebuild
  })
})
