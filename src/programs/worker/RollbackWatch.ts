/**
 * Rollback detection: a principal that can write the table can delete a key's newest event item, and the key then
 * reads as its previous value (or, with a tombstone deleted, comes back), every check passing because the older
 * event is genuine. The worker sees every event and every removal on the stream, so it can tell.
 *
 * Compaction removes an event only once a newer one exists (moving it to history), and a tombstone only in the
 * transaction that files it in the key's grave; a late write undone by its writer had landed under a newer event.
 * So a removal is the store's own when the key holds (live, or in its grave) an event at or past the removed seq,
 * and a rollback otherwise. A removal of an event older than one the worker saw needs no read; only removals of
 * the newest known event (tombstone burials, rollbacks, keys the worker forgot) are checked against the table.
 */
import { Clock, Effect, Metric, Option, Schedule } from "effect"
import type { Event } from "../../domain/Event.ts"
import type { EventTable } from "../../infra/EventTable.ts"

/** Rollbacks detected since the worker started. */
export const rollbacksMetric = Metric.counter("dynastate_worker_rollbacks_detected", {
  description: "keys whose newest event was removed from the table outside compaction",
  incremental: true
})

/** A key whose newest event disappeared from the table without a successor. */
export interface Rollback {
  readonly key: string
  /** The seq of the event that was removed. */
  readonly removedSeq: number
  /** The key's newest event now (undefined: none at all). */
  readonly newestSeq: number | undefined
  /** When the worker noticed (epoch ms). */
  readonly detectedAt: number
}

/** Keys remembered; beyond it the oldest are forgotten and their removals checked by a read. */
const rememberedKeys = 100_000
/** Rollbacks kept for the status; the count is in the metric. */
const keptRollbacks = 1_000

/** A rollback watch over one event table. */
export interface RollbackWatch {
  /** Notes an event the worker applied (or read on the stream). */
  readonly seen: (event: Event) => void
  /** Checks the removal of `key`'s event `seq`; reports a rollback (log, metric, status) if it was one. */
  readonly removed: (key: string, seq: number) => Effect.Effect<void>
  /** The rollbacks detected, oldest first (at most the last 1,000). */
  readonly detected: () => ReadonlyArray<Rollback>
}

/** A watch that reads `table` to check removals of the newest events it knows of. */
export const make = (table: EventTable["Service"]): RollbackWatch => {
  const newest = new Map<string, number>()
  const detected: Array<Rollback> = []

  const seen = (event: Event) => {
    const known = newest.get(event.key)
    if (known !== undefined && known >= event.seq) return
    newest.delete(event.key) // re-inserted last: the map stays in recency order for trimming
    newest.set(event.key, event.seq)
    if (newest.size > rememberedKeys) newest.delete(newest.keys().next().value!)
  }

  const removed = (key: string, seq: number): Effect.Effect<void> =>
    Effect.gen(function*() {
      const known = newest.get(key)
      // A newer event was seen: this one was superseded, and compaction moves superseded events.
      if (known !== undefined && known > seq) return
      const latest = Option.getOrUndefined(yield* table.latestState(key))
      if (latest !== undefined && latest.seq >= seq) return
      const rollback: Rollback = {
        key,
        removedSeq: seq,
        newestSeq: latest?.seq,
        detectedAt: yield* Clock.currentTimeMillis
      }
      detected.push(rollback)
      if (detected.length > keptRollbacks) detected.shift()
      yield* Metric.update(rollbacksMetric, 1)
      yield* Effect.logError(
        `ROLLBACK: event ${seq} of ${key} was removed from the table outside compaction; the key now reads as ` +
          (latest === undefined ? "absent" : `its event ${latest.seq}`) +
          ". Someone with write access to the table deleted it (see SECURITY.md)."
      )
    }).pipe(
      Effect.retry({ times: 3, schedule: Schedule.exponential("200 millis") }),
      Effect.catch((error) =>
        Effect.logWarning(`cannot check the removal of event ${seq} of ${key} (${error._tag}); not known as a rollback`)
      )
    )

  return { seen, removed, detected: () => [...detected] }
}
