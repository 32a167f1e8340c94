/**
 * The history projection: compaction (see `Compaction`) run by the worker on
 * every event. What has not settled when an event is applied is scheduled
 * and compacted once it has. The schedule lives in memory, so the rebuild
 * (run when the worker starts, after a trimmed stream and after a takeover)
 * starts one pass over every key in the background, which schedules what it
 * finds unsettled; stream processing does not wait for it.
 *
 * It needs no per-key seq to stay correct when events arrive out of order,
 * twice or from two workers at once: compacting as of an older seq does a
 * part of what compacting as of a newer one does, every step is conditional
 * on the very event it read, and a grave never replaces a newer one.
 */
import type { Fiber } from "effect"
import { Clock, Effect, Queue } from "effect"
import type { Event } from "../../../domain/Event.ts"
import { carriesValue } from "../../../domain/Event.ts"
import { defaultWriteFence, isSafe, minimumSettleMillis } from "../../../domain/WriteFence.ts"
import { EventTable } from "../../../infra/EventTable.ts"
import { HistoryArea } from "../../../infra/HistoryArea.ts"
import * as MinHeap from "../../collections/MinHeap.ts"
import { compactAll, compactKey, defaultCompactionOptions } from "../Compaction.ts"
import type { CompactionOptions, Pending } from "../Compaction.ts"
import * as Projection from "../Projection.ts"

export type { Retention } from "../../../domain/Retention.ts"

/** How long to wait before trying a key again after compaction failed on it. */
const retryMillis = 1000

/** The compaction projection; its timer and rebuild passes run in the caller's scope. */
export const make = (options: CompactionOptions = defaultCompactionOptions) =>
  Effect.gen(function*() {
    const area = yield* HistoryArea
    const table = yield* EventTable
    const fence = options.writerFence ?? defaultWriteFence
    if (!isSafe(options.settleMillis, fence)) {
      yield* Effect.logWarning(
        `compaction settles events for ${options.settleMillis} ms; writers deciding within ${fence.maxStateAgeMillis} ms ` +
          `with ${fence.writeTimeoutMillis} ms appends need more than ${minimumSettleMillis(fence)} ms on AWS: ` +
          "a writer deciding on a stale cached state could lose a write (see WriteFence)"
      )
    }
    // Per key, the newest event to compact as of; the heap orders turns by due time, one live turn per key.
    const waiting = new Map<string, { seq: number; tombstone: boolean; readonly dueAt: number }>()
    const turns = MinHeap.make((turn: { readonly key: string; readonly dueAt: number }) => turn.dueAt)
    const wake = yield* Queue.sliding<void>(1)

    const schedule = (pending: Pending) => {
      const known = waiting.get(pending.key)
      if (known !== undefined) {
        // Its turn comes first; whatever has not settled by then is scheduled again.
        if (pending.seq > known.seq) {
          known.seq = pending.seq
          known.tombstone = pending.tombstone
        }
        return
      }
      waiting.set(pending.key, { seq: pending.seq, tombstone: pending.tombstone, dueAt: pending.dueAt })
      turns.push({ key: pending.key, dueAt: pending.dueAt })
      Queue.offerUnsafe(wake, undefined)
    }

    // A failure (throttling, say) only delays a key: it never reaches the worker, which would quarantine it.
    const compact = (key: string, seq: number, tombstone: boolean) =>
      compactKey(area, key, seq, tombstone, options).pipe(
        Effect.map((dueAt) => {
          if (dueAt !== undefined) schedule({ key, seq, tombstone, dueAt })
        }),
        Effect.catch((error) =>
          Effect.logWarning(`compaction of ${key} failed (${error._tag}); trying again shortly`).pipe(
            Effect.andThen(Clock.currentTimeMillis),
            Effect.map((now) => schedule({ key, seq, tombstone, dueAt: now + retryMillis }))
          )
        )
      )

    const timer = Effect.gen(function*() {
      while (true) {
        const next = turns.peek()
        if (next === undefined) {
          yield* Queue.take(wake)
          continue
        }
        const now = yield* Clock.currentTimeMillis
        if (next.dueAt > now) {
          yield* Effect.race(Queue.take(wake), Effect.sleep(next.dueAt - now))
          continue
        }
        turns.pop()
        const entry = waiting.get(next.key)
        if (entry === undefined || entry.dueAt !== next.dueAt) continue
        waiting.delete(next.key)
        yield* compact(next.key, entry.seq, entry.tombstone)
      }
    })
    yield* Effect.forkScoped(timer)

    const scope = yield* Effect.scope
    let pass: Fiber.Fiber<void> | undefined
    const rebuild = Effect.suspend(() => {
      if (pass !== undefined && pass.pollUnsafe() === undefined) return Effect.void
      return compactAll(table, area, options, () => Effect.void).pipe(
        Effect.map((done) => {
          for (const pending of done.pending) schedule(pending)
        }),
        Effect.catch((error) =>
          Effect.logWarning(`a compaction pass over every key failed (${error._tag}); the next rebuild tries again`)
        ),
        Effect.forkIn(scope),
        Effect.map((fiber) => {
          pass = fiber
        })
      )
    })

    return Projection.make({
      name: "history",
      prefixes: [],
      apply: (event: Event) => compact(event.key, event.seq, !carriesValue(event)),
      rebuild
    })
  })
