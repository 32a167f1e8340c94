/**
 * Tampering the worker can see on the stream, which value encryption cannot: genuine events removed, and
 * tombstones nobody authenticated.
 *
 * - **Rollbacks.** A principal that can write the table can delete a key's newest event item; the key then reads
 *   as its previous value (or, with a tombstone deleted, comes back), every check passing because the older event
 *   is genuine. Compaction removes an event only once a newer one exists (moving it to history), and a tombstone
 *   only once it is filed in the key's grave; a late write undone by its writer had landed under a newer event. So
 *   a removal is the store's own when the key still holds (live, or in its grave) an event at or past the removed
 *   seq, and a rollback otherwise. A removal of an event older than one the worker saw needs no read; only removals
 *   of the newest known event (tombstone burials, rollbacks, keys the worker forgot) are checked against the table.
 * - **Unauthenticated tombstones.** This version writes every tombstone with an encrypted empty value bound to it
 *   (see `EventRecord`), so a delete or expire event without one was forged, or written by a version before it.
 *   Readers still take it as a deletion (older tables hold such tombstones); the worker reports it.
 */
import { Clock, Effect, Metric, Option, Schedule } from "effect"
import type { Event } from "../../domain/Event.ts"
import type { EventTable } from "../../infra/EventTable.ts"

/** Tampering detected since the worker started, by kind. */
export const tamperingMetric = Metric.counter("dynastate_worker_tampering_detected", {
  description:
    "events removed outside compaction (kind rollback) and tombstones without authentication (kind unauthenticated)",
  incremental: true
})

/** Something the worker saw that the store never does. */
export type Tampering =
  | {
    readonly kind: "rollback"
    readonly key: string
    /** The seq of the event that was removed. */
    readonly seq: number
    /** The key's newest event now (undefined: none at all). */
    readonly newestSeq: number | undefined
    /** When the worker noticed (epoch ms). */
    readonly detectedAt: number
  }
  | {
    readonly kind: "unauthenticated"
    readonly key: string
    /** The seq of the tombstone without authentication. */
    readonly seq: number
    readonly detectedAt: number
  }

/** Keys remembered; beyond it the oldest are forgotten and their removals checked by a read. */
const rememberedKeys = 100_000
/** Findings kept for the status; the count is in the metric. */
const keptFindings = 1_000

/** A tamper watch over one event table. */
export interface TamperWatch {
  /** Notes an event the worker read on the stream; `authenticated` is false for a tombstone without a value. */
  readonly seen: (event: Event, authenticated: boolean) => Effect.Effect<void>
  /** Checks the removal of `key`'s event `seq`; reports a rollback if it was one. */
  readonly removed: (key: string, seq: number) => Effect.Effect<void>
  /** What was detected, oldest first (at most the last 1,000). */
  readonly detected: () => ReadonlyArray<Tampering>
}

/**
 * A watch that reads `table` to check removals of the newest events it knows of; `movedAway` tells the removals a
 * relocation made (a key sealed in place: its events now under its sealed form, see `SealedFallback.MovedKeys`).
 */
export const make = (
  table: EventTable["Service"],
  movedAway: (key: string, seq: number) => Effect.Effect<boolean, { readonly _tag: string }> = () =>
    Effect.succeed(false)
): TamperWatch => {
  const newest = new Map<string, number>()
  const detected: Array<Tampering> = []

  const report = (finding: Tampering, message: string) =>
    Effect.gen(function*() {
      detected.push(finding)
      if (detected.length > keptFindings) detected.shift()
      yield* Metric.update(Metric.withAttributes(tamperingMetric, { kind: finding.kind }), 1)
      yield* Effect.logError(`TAMPERING: ${message} (see SECURITY.md)`)
    })

  const seen = (event: Event, authenticated: boolean) =>
    Effect.gen(function*() {
      const known = newest.get(event.key)
      if (known === undefined || known < event.seq) {
        newest.delete(event.key) // re-inserted last: the map stays in recency order for trimming
        newest.set(event.key, event.seq)
        if (newest.size > rememberedKeys) newest.delete(newest.keys().next().value!)
      }
      if (authenticated) return
      yield* report(
        { kind: "unauthenticated", key: event.key, seq: event.seq, detectedAt: yield* Clock.currentTimeMillis },
        `the ${event.op} event ${event.seq} of ${event.key} carries no authentication: it was written by hand or ` +
          "by a dynastate before 0.2, and the key reads as deleted"
      )
    })

  const removed = (key: string, seq: number): Effect.Effect<void> =>
    Effect.gen(function*() {
      const known = newest.get(key)
      // A newer event was seen: this one was superseded, and compaction moves superseded events.
      if (known !== undefined && known > seq) return
      const latest = Option.getOrUndefined(yield* table.latestState(key))
      if (latest !== undefined && latest.seq >= seq) return
      if (latest === undefined && (yield* movedAway(key, seq))) return
      yield* report(
        { kind: "rollback", key, seq, newestSeq: latest?.seq, detectedAt: yield* Clock.currentTimeMillis },
        `event ${seq} of ${key} was removed from the table outside compaction; the key now reads as ` +
          (latest === undefined ? "absent" : `its event ${latest.seq}`)
      )
    }).pipe(
      Effect.retry({ times: 3, schedule: Schedule.exponential("200 millis") }),
      Effect.catch((error) =>
        Effect.logWarning(`cannot check the removal of event ${seq} of ${key} (${error._tag}); not known as a rollback`)
      )
    )

  return { seen, removed, detected: () => [...detected] }
}
