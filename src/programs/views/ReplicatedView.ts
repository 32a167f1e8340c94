/**
 * An in-memory replica of the current state of a key prefix, kept up to date
 * by a projection, with `waitFor(revision)` for read-your-writes: after a
 * write returns its revision, waiting for it makes the replica show the write.
 */
import { Deferred, Effect, Option, Stream } from "effect"
import type { Result } from "effect"
import type { Event } from "../../domain/Event.ts"
import { carriesValue, itemRevision } from "../../domain/Event.ts"
import type { Item } from "../../domain/Item.ts"
import { isExpired } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import { EventTable } from "../../infra/EventTable.ts"
import type { ReadError, StoredEvent } from "../../infra/EventTable.ts"
import * as NewestEvents from "../store/NewestEvents.ts"
import * as Projection from "../worker/Projection.ts"

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
    // The seq of recent deletions, so a replayed older put cannot bring a deleted key back (bounded, oldest out first).
    const deleted = new Map<string, number>()
    const forget = (key: string, seq: number) => {
      items.delete(key)
      deleted.delete(key)
      deleted.set(key, seq)
      if (deleted.size > rememberedRevisions) deleted.delete(deleted.keys().next().value!)
    }
    // While a rebuild reads the table, the keys applied meanwhile with their seq: its copy may predate them.
    const touched = new Map<string, number>()
    let rebuilds = 0
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
        const known = items.get(event.key)?.seq ?? deleted.get(event.key) ?? 0
        if (known < event.seq) {
          if (carriesValue(event) && event.value !== undefined) {
            items.set(event.key, {
              key: event.key,
              value: event.value,
              expires: event.expires,
              revision: itemRevision(event),
              seq: event.seq
            })
            deleted.delete(event.key)
          } else {
            forget(event.key, event.seq)
          }
          if (rebuilds > 0) touched.set(event.key, event.seq)
        }
        see(event.revision)
      })

    // A fresh copy replaces the replica whole, so keys deleted or changed while events were missed are right too.
    // Each item keeps its event's seq: the stream tail replayed after a rebuild must not put older values back.
    const copy = NewestEvents.read(table, { prefixes: [prefix] }, { include: "graves" }).pipe(
      Stream.mapEffect((
        stored
      ): Effect.Effect<
        { readonly stored: StoredEvent; readonly decoded: Result.Result<Event, ReadError> | undefined }
      > =>
        NewestEvents.mayBeLive(stored, Number.NEGATIVE_INFINITY)
          ? Effect.map(Effect.result(table.decode(stored)), (decoded) => ({ stored, decoded }))
          : Effect.succeed({ stored, decoded: undefined })
      ),
      Stream.runCollect,
      Effect.flatMap((outcomes) => {
        const current = new Map<string, Item & { readonly seq: number }>()
        const gone = new Map<string, number>()
        const skipped: Array<string> = []
        for (const { stored, decoded } of outcomes) {
          if (decoded === undefined) {
            gone.set(stored.key, stored.seq)
            continue
          }
          // A shredded value is gone for good, an unreadable one is reported: the replica leaves either key out.
          if (decoded._tag === "Failure") {
            if (decoded.failure._tag === "DecryptionFailed") skipped.push(decoded.failure.message)
            else if (decoded.failure._tag !== "Shredded") return Effect.fail(decoded.failure)
            gone.set(stored.key, stored.seq)
            continue
          }
          const event = decoded.success
          if (carriesValue(event) && event.value !== undefined) {
            current.set(event.key, {
              key: event.key,
              value: event.value,
              expires: event.expires,
              revision: itemRevision(event),
              seq: event.seq
            })
          }
        }
        return Effect.forEach(skipped, (reason) => Effect.logError(`replicated view ${name}: ${reason}`), {
          discard: true
        }).pipe(
          Effect.andThen(Effect.sync(() => {
            const applied = new Map(items)
            const forgotten = new Map(deleted)
            items.clear()
            deleted.clear()
            for (const [key, seq] of gone) forget(key, seq)
            for (const [key, item] of current) {
              items.set(key, item)
              see(item.revision)
            }
            // A key applied beside the rebuild past what the copy holds keeps what it was applied to.
            for (const [key, seq] of touched) {
              if (seq <= (current.get(key)?.seq ?? gone.get(key) ?? 0)) continue
              const item = applied.get(key)
              if (item !== undefined) items.set(key, item)
              else forget(key, forgotten.get(key) ?? seq)
            }
          }))
        )
      })
    )

    // Applies go on beside a rebuild (the worker's stream, a worker whose lease lapsed, a rebuild run by hand).
    const rebuild = Effect.acquireUseRelease(
      Effect.sync(() => rebuilds++),
      () => copy,
      () =>
        Effect.sync(() => {
          if (--rebuilds === 0) touched.clear()
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
