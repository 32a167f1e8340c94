/**
 * An in-memory replica of the current state of a key prefix, kept up to date
 * by a projection, with `waitFor(revision)` for read-your-writes: after a
 * write returns its revision, waiting for it makes the replica show the write.
 */
import { Deferred, Effect, Option, Stream } from "effect"
import type { Event } from "../../domain/Event.ts"
import { carriesValue, itemRevision } from "../../domain/Event.ts"
import type { Item } from "../../domain/Item.ts"
import { isExpired } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import { EventTable } from "../../infra/EventTable.ts"
import * as KeyStates from "../KeyStates.ts"
import * as Projection from "../Projection.ts"
import { mayBeLive } from "../Ranges.ts"

/** Reads of a replicated view. */
export interface ReplicatedView {
  /** The item of a key as the replica has it (expired items are absent). */
  readonly get: (key: string) => Effect.Effect<Option.Option<Item>>
  /** Every live item of the replica, in key order. */
  readonly items: Effect.Effect<ReadonlyArray<Item>>
  /** Completes once the replica applied the event with this revision. */
  readonly waitFor: (revision: string) => Effect.Effect<void>
}

/** How many recent revisions are remembered for `waitFor` calls that come after the event. */
const rememberedRevisions = 100_000

/** A replicated view of `prefix`: the projection to run in a worker, and the view to read. */
export const make = (name: string, prefix: string) =>
  Effect.gen(function*() {
    const table = yield* EventTable
    const items = new Map<string, Item & { readonly seq: number }>()
    const seen = new Set<string>()
    const waiters = new Map<string, Array<Deferred.Deferred<void>>>()

    const see = (revision: string) => {
      seen.add(revision)
      if (seen.size > rememberedRevisions) seen.delete(seen.values().next().value!)
      for (const waiter of waiters.get(revision) ?? []) Deferred.doneUnsafe(waiter, Effect.void)
      waiters.delete(revision)
    }

    const apply = (event: Event) =>
      Effect.sync(() => {
        const known = items.get(event.key)
        if (known === undefined || known.seq < event.seq) {
          if (carriesValue(event) && event.value !== undefined) {
            items.set(event.key, { key: event.key, value: event.value, expires: event.expires, revision: itemRevision(event), seq: event.seq })
          } else {
            items.delete(event.key)
          }
        }
        see(event.revision)
      })

    // A fresh copy replaces the replica whole, so keys deleted or changed while events were missed are right too.
    // Each item keeps its event's seq: the stream tail replayed after a rebuild must not put older values back.
    const rebuild = KeyStates.newestUnder(table, [prefix]).pipe(
      Stream.filter((stored) => mayBeLive(stored, Number.NEGATIVE_INFINITY)),
      Stream.mapEffect((stored) => Effect.result(table.decode(stored))),
      Stream.runCollect,
      Effect.flatMap((decoded) => {
        const current = new Map<string, Item & { readonly seq: number }>()
        for (const outcome of decoded) {
          // A shredded value is gone for good: the replica leaves its key out, as `get` would fail on it.
          if (outcome._tag === "Failure") {
            if (outcome.failure._tag === "Shredded") continue
            return Effect.fail(outcome.failure)
          }
          const event = outcome.success
          if (carriesValue(event) && event.value !== undefined) {
            current.set(event.key, { key: event.key, value: event.value, expires: event.expires, revision: itemRevision(event), seq: event.seq })
          }
        }
        return Effect.sync(() => {
          items.clear()
          for (const [key, item] of current) {
            items.set(key, item)
            see(item.revision)
          }
        })
      })
    )

    const projection = Projection.make({ name, prefixes: [prefix], apply, rebuild })

    const view: ReplicatedView = {
      get: (key) =>
        Effect.map(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => {
          const item = items.get(key)
          return item && !isExpired(item.expires, now) ? Option.some(strip(item)) : Option.none()
        }),
      items: Effect.map(Effect.clockWith((clock) => clock.currentTimeMillis), (now) =>
        [...items.values()]
          .filter((item) => !isExpired(item.expires, now))
          .sort((a, b) => Key.compare(a.key, b.key))
          .map(strip)),
      waitFor: (revision) =>
        Effect.suspend(() => {
          if (seen.has(revision)) return Effect.void
          const waiter = Deferred.makeUnsafe<void>()
          waiters.set(revision, [...(waiters.get(revision) ?? []), waiter])
          return Deferred.await(waiter)
        })
    }
    return { projection, view }
  })

const strip = ({ seq: _seq, ...item }: Item & { readonly seq: number }): Item => item
