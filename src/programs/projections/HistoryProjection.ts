/**
 * The history projection: compaction (see `Compaction`) run by the worker on
 * every event. What has not settled when an event is applied is scheduled
 * and compacted once it has; the schedule lives in memory, so the rebuild
 * (run when the worker starts, after a trimmed stream and after a takeover)
 * makes one pass over every key and schedules what is left.
 */
import { Clock, Effect, Queue } from "effect"
import type { Event } from "../../domain/Event.ts"
import { carriesValue } from "../../domain/Event.ts"
import { EventTable } from "../../infra/EventTable.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import { compactAll, compactKey, defaultCompactionOptions } from "../Compaction.ts"
import type { CompactionOptions, Pending } from "../Compaction.ts"
import * as Projection from "../Projection.ts"

export type { Retention } from "../../domain/Retention.ts"

/** The compaction projection; its timer runs in the caller's scope. */
export const make = (options: CompactionOptions = defaultCompactionOptions) =>
  Effect.gen(function*() {
    const area = yield* HistoryArea
    const table = yield* EventTable
    // Per key, the newest event to compact as of and when; one turn per key in a FIFO of due times (they arrive nearly in order).
    const waiting = new Map<string, { seq: number; tombstone: boolean; readonly dueAt: number }>()
    const due: Array<{ readonly key: string; readonly dueAt: number }> = []
    const wake = yield* Queue.sliding<void>(1)

    const schedule = (pending: Pending) => {
      const known = waiting.get(pending.key)
      if (known !== undefined) {
        // Its turn comes first; whatever has not settled by then is scheduled again.
        if (pending.seq > known.seq) (known.seq = pending.seq, known.tombstone = pending.tombstone)
        return
      }
      waiting.set(pending.key, { seq: pending.seq, tombstone: pending.tombstone, dueAt: pending.dueAt })
      due.push({ key: pending.key, dueAt: pending.dueAt })
      Queue.offerUnsafe(wake, undefined)
    }

    const compact = (key: string, seq: number, tombstone: boolean) =>
      Effect.gen(function*() {
        const dueAt = yield* compactKey(area, key, seq, tombstone, options)
        if (dueAt !== undefined) schedule({ key, seq, tombstone, dueAt })
      })

    const timer = Effect.gen(function*() {
      while (true) {
        const next = due[0]
        if (next === undefined) {
          yield* Queue.take(wake)
          continue
        }
        const now = yield* Clock.currentTimeMillis
        if (next.dueAt > now) {
          yield* Effect.race(Queue.take(wake), Effect.sleep(next.dueAt - now))
          continue
        }
        due.shift()
        const entry = waiting.get(next.key)
        if (entry === undefined || entry.dueAt !== next.dueAt) continue
        waiting.delete(next.key)
        yield* compact(next.key, entry.seq, entry.tombstone).pipe(
          Effect.catch((error) =>
            Effect.logWarning(`compaction of ${next.key} failed (${error._tag}); retrying shortly`).pipe(
              Effect.andThen(Clock.currentTimeMillis),
              Effect.map((at) => schedule({ key: next.key, seq: entry.seq, tombstone: entry.tombstone, dueAt: at + 1000 }))
            )
          )
        )
      }
    })
    yield* Effect.forkScoped(timer)

    return Projection.make({
      name: "history",
      prefixes: [],
      apply: (event: Event) => compact(event.key, event.seq, !carriesValue(event)),
      rebuild: Effect.gen(function*() {
        const pass = yield* compactAll(table, area, options, () => Effect.void)
        for (const pending of pass.pending) schedule(pending)
      })
    })
  })
