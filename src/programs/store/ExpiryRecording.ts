/**
 * Recording an expiry a read came across. A read answers from what it read: the `expire` event it finds due is
 * written as a courtesy (so watchers hear of it sooner), never as part of the answer. The projection worker
 * records every expiry anyway, so a process that cannot write (denied, throttled, contended) loses nothing by
 * failing here; the failure is logged and counted instead of failing the read.
 */
import { Effect, Metric } from "effect"

/** Expiries a read found due but could not record (the worker records them). */
export const expiryRecordFailures = Metric.counter("dynastate_store_expiry_record_failures", {
  description: "expired items a read could not record an expire event for (left to the projection worker)",
  incremental: true
})

/** What a recording failed with, as far as the log needs it: a tag and a reason, never an item's value. */
interface RecordingFailure {
  readonly _tag: string
  readonly message: string
}

/**
 * Runs `record` (the `expire` event of `key`) as a courtesy: a typed failure is logged (key and error only: the
 * errors of a write carry no value) and counted in {@link expiryRecordFailures}, and the read goes on. Defects and
 * interruptions are not swallowed.
 */
export const bestEffort = <E extends RecordingFailure>(
  key: string,
  record: Effect.Effect<void, E>
): Effect.Effect<void> =>
  Effect.catch(
    record,
    (error) =>
      Effect.logWarning(`could not record the expiry of ${key}; the projection worker will: ${error._tag}`).pipe(
        Effect.annotateLogs({ key, error: error._tag, reason: error.message }),
        Effect.andThen(Metric.update(expiryRecordFailures, 1))
      )
  )
