/**
 * An in-memory replica of the current state of a key prefix, kept up to date
 * by a projection, with read-your-writes: after a write of this process is
 * acknowledged, `waitFor` of what it returned (or `waitForOwnWrites` for the
 * writes that return no revision) completes once the replica reflects every
 * event the write appended.
 *
 * The view learns what a write appended from the store instance's
 * `WriteAcks` (provided by `Store.layer` beside the store): a revision alone
 * does not name one event (`keepAlive` returns the kept revision, the events
 * of an `atomicWrite` share one), a (key, seq) does.
 */
import { Deferred, Effect, Option, Stream } from "effect"
import type { Result } from "effect"
import type { Event } from "../../domain/Event.ts"
import { carriesValue, itemRevision } from "../../domain/Event.ts"
import type { Item, Lease } from "../../domain/Item.ts"
import { isExpired } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import type { ReadError, StoredEvent } from "../../infra/EventTable.ts"
import { servingTable } from "../store/LayoutMigration.ts"
import * as NewestEvents from "../store/NewestEvents.ts"
import { WriteAcks } from "../store/WriteAcks.ts"
import * as Projection from "../worker/Projection.ts"

/** Reads of a replicated view. */
export interface ReplicatedView {
  /** The item of a key as the replica has it (expired items are absent). */
  readonly get: (key: string) => Effect.Effect<Option.Option<Item>>
  /** Every live item of the replica, in key order. */
  readonly items: Effect.Effect<ReadonlyArray<Item>>
  /**
   * Completes once the replica reflects the write that returned `written` (a lease, or `atomicWrite`'s revision).
   * For a write of this process made after the view, that is every event the write appended under the view's prefix
   * (a later event of the same key counts too; a write with none under the prefix is reflected at once). For a revision this process did not write, wrote before the view was
   * made, or wrote so long ago that `WriteAcks` forgot it, it is as far as the replica can tell: once it applied an
   * event with that revision (for an `atomicWrite` the first of its keys, for a `keepAlive` the kept value's put).
   */
  readonly waitFor: (written: string | Lease) => Effect.Effect<void>
  /**
   * Completes once the replica reflects every write this process acknowledged under the view's prefix since the view
   * was made and before the call (only those to `keys`, when given): the read-your-writes of `delete`,
   * `conditionalDelete` and `deleteRange`, which return no revision. A write that failed is not waited for, even one
   * that may have happened (a timed-out append): read the key to find out.
   */
  readonly waitForOwnWrites: (keys?: Iterable<string>) => Effect.Effect<void>
}

/** How many recent revisions are remembered for `waitFor` calls that come after the event. */
const rememberedRevisions = 100_000

/**
 * A replicated view of `prefix`: the projection to run in a worker, and the view to read. Its read-your-writes covers
 * the writes of the store instance whose `WriteAcks` it is given, from the moment it is made until the scope closes.
 */
export const make = (name: string, prefix: string) =>
  Effect.gen(function*() {
    // The table the store in context serves through: a backfill during a layout migration reads keys not moved yet.
    const table = yield* servingTable
    const acks = yield* WriteAcks
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

    // Read-your-writes for this process's writes: per key, the newest seq it wrote that the replica has not reached.
    // A key stays here only until the replica applies that seq (or a rebuild read after its acknowledgement), so
    // this holds at most the keys of the prefix, and a waiter is only ever parked on a key in it.
    const knownSeq = (key: string) => items.get(key)?.seq ?? deleted.get(key) ?? 0
    const pending = new Map<string, number>()
    const keyWaiters = new Map<string, Array<{ readonly seq: number; readonly done: Deferred.Deferred<void> }>>()
    /** The replica reflects `key` up to `seq`: wakes whoever waits for no more than that. */
    const reached = (key: string, seq: number) => {
      if ((pending.get(key) ?? Number.POSITIVE_INFINITY) <= seq) pending.delete(key)
      const waiting = keyWaiters.get(key)
      if (waiting === undefined) return
      const rest = waiting.filter((waiter) => waiter.seq > seq)
      for (const waiter of waiting) if (waiter.seq <= seq) Deferred.doneUnsafe(waiter.done, Effect.void)
      if (rest.length > 0) keyWaiters.set(key, rest)
      else keyWaiters.delete(key)
    }
    const madeAt = acks.ordinal()
    yield* acks.subscribe((ack) => {
      for (const event of ack.events) {
        if (!event.key.startsWith(prefix) || knownSeq(event.key) >= event.seq) continue
        if ((pending.get(event.key) ?? 0) < event.seq) pending.set(event.key, event.seq)
      }
    })
    const waitForKey = (key: string, seq: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        // Not pending: the replica applied this process's newest write of the key, or a rebuild read after it.
        if (knownSeq(key) >= seq || !pending.has(key)) return Effect.void
        const done = Deferred.makeUnsafe<void>()
        keyWaiters.set(key, [...(keyWaiters.get(key) ?? []), { seq, done }])
        return Deferred.await(done)
      })
    const waitForRevision = (revision: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (seen.has(revision)) return Effect.void
        const waiter = Deferred.makeUnsafe<void>()
        waiters.set(revision, [...(waiters.get(revision) ?? []), waiter])
        return Deferred.await(waiter)
      })

    const applyAndReach = (event: Event) =>
      Effect.tap(apply(event), () => Effect.sync(() => reached(event.key, event.seq)))
    // A rebuild replaces the replica whole; a deleted key keeps its seq there too (graves), so the seqs tell.
    const rebuildAndReach = Effect.tap(rebuild, () =>
      Effect.sync(() => {
        for (const key of [...pending.keys()]) reached(key, knownSeq(key))
      }))

    const projection = Projection.make({ name, prefixes: [prefix], apply: applyAndReach, rebuild: rebuildAndReach })

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
      waitFor: (written) =>
        Effect.suspend(() => {
          const revision = typeof written === "string" ? written : written.revision
          const events = acks.eventsOf(revision)
          if (events === undefined) return waitForRevision(revision)
          const inView = events.filter((event) => event.key.startsWith(prefix))
          const tracked = inView.filter((event) => event.ordinal > madeAt)
          const waits = tracked.map((event) => waitForKey(event.key, event.seq))
          if (tracked.length < inView.length) waits.push(waitForRevision(revision))
          return Effect.all(waits, { discard: true })
        }),
      waitForOwnWrites: (keys) =>
        Effect.suspend(() => {
          const chosen = keys === undefined ? [...pending] : [...new Set(keys)].flatMap((key) => {
            const seq = pending.get(key)
            return seq === undefined ? [] : [[key, seq] as const]
          })
          return Effect.all(chosen.map(([key, seq]) => waitForKey(key, seq)), { discard: true })
        })
    }
    return { projection, view }
  })

const strip = ({ seq: _seq, ...item }: Item & { readonly seq: number }): Item => item
