/**
 * The projection worker: follows the table's stream and runs projections on
 * every event, in per-key order, at least once, sharing the stream's shards
 * fairly with other worker processes through leases (`ShardLeasing`).
 *
 * - A shard is read by the worker holding its lease; leases expire unless
 *   renewed, so a crashed worker's shards are taken over within about one
 *   lease period. The lease epoch fences checkpoints: a worker that lost a
 *   shard can no longer record progress on it.
 * - Each worker holds at most its fair share of the shards and hands surplus
 *   ones off between batches, so workers started later get their part.
 * - A batch is applied and checkpointed as one uninterruptible step, so
 *   shutdown finishes it or never starts it; leases are then released.
 * - A projection that keeps failing on an event quarantines that key for
 *   that projection (logged, kept in the status) and the worker goes on.
 *   Storage that is unavailable (see {@link isOutage}) is no reason to give
 *   up on a key: the batch is read again from the checkpoint until it is back.
 */
import { Clock, Context, Effect, Fiber, Layer, Metric, Option, Schedule, Stream } from "effect"
import { randomUUID } from "node:crypto"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import type { Dynamo } from "../../infra/Dynamo.ts"
import { isUnauthenticatedTombstone } from "../../infra/EventRecord.ts"
import type { StoredEvent } from "../../infra/EventRecord.ts"
import { EventTable } from "../../infra/EventTable.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import type { LeaseLocation } from "../../infra/ProjectionLeases.ts"
import { eventOfRecord, removedEvent, storedOfRecord } from "../../infra/streams/StreamEvents.ts"
import type { StreamBatch } from "../../infra/streams/StreamReader.ts"
import { defaultStreamReaderOptions, readStream } from "../../infra/streams/StreamReader.ts"
import type { StreamReaderOptions } from "../../infra/streams/StreamReader.ts"
import type { StreamsApi } from "../../infra/streams/StreamsApi.ts"
import * as History from "../store/History.ts"
import { MovedKeys } from "../store/SealedFallback.ts"
import type { Projection } from "./Projection.ts"
import { covers, eventFor, readsValues, valuesWanted } from "./Projection.ts"
import * as ShardLeasing from "./ShardLeasing.ts"
import * as TamperWatch from "./TamperWatch.ts"
import type { Tampering } from "./TamperWatch.ts"

/** Events applied by the worker (each event counts once, whatever number of projections ran on it). */
export const eventsAppliedMetric = Metric.counter("dynastate_worker_events_applied", {
  description: "stream events applied by the projection worker",
  incremental: true
})

/** Age of the last applied record when it was applied, per shard (milliseconds); 0 once the reader is at the shard's tip. */
export const lagMetric = Metric.gauge("dynastate_worker_lag_ms", {
  description: "age of the last applied stream record"
})

/** Keys quarantined by a failing projection. */
export const quarantinedMetric = Metric.gauge("dynastate_worker_quarantined_keys", {
  description: "keys a projection gave up on"
})

/**
 * Whether a projection's failure is its storage being unavailable (throttled, unreachable, refusing access, its
 * table missing) rather than the event being one it cannot handle. Retrying later cures an outage, and
 * quarantining every key it touched would leave them stale for good; a request DynamoDB refuses as invalid
 * (`ValidationException`, an item collection over its limit) stays refused, as does any other error.
 */
export const isOutage = (error: unknown): boolean => {
  const tag = (error as { readonly _tag?: unknown } | undefined)?._tag
  if (tag === "Throttled" || tag === "WriteContention") return true
  if (tag !== "StorageFailure") return false
  const reason = String((error as { readonly reason?: unknown }).reason ?? "")
  return !/^(ValidationException|ItemCollectionSizeLimitExceededException)\b/.test(reason)
}

/** How a worker runs. */
export interface WorkerOptions {
  readonly leases: LeaseLocation
  /** A lease not renewed for this long may be taken over. */
  readonly leaseMillis: number
  /** Attempts of a projection on one event before its key is quarantined. */
  readonly maxApplyAttempts: number
  /**
   * Keys of one batch applied at once. A key's events are applied one after the other, in seq order; different
   * keys do not wait for each other, so a batch costs about as long as its busiest key's round trips, not the sum.
   */
  readonly applyConcurrency: number
  readonly reader: StreamReaderOptions
}

/** Defaults: shards of a dead worker move within about 20 seconds. */
export const defaultWorkerOptions = (table: string): WorkerOptions => ({
  leases: { table: `${table}.projections`, group: "default" },
  leaseMillis: 15_000,
  maxApplyAttempts: 5,
  applyConcurrency: 16,
  reader: defaultStreamReaderOptions
})

/** A key a projection gave up on, with the error it kept failing with. */
export interface Quarantined {
  readonly projection: string
  readonly key: string
  readonly seq: number
  readonly error: string
}

/** What the worker is doing, for the status line and metrics. */
export interface WorkerStatus {
  readonly owner: string
  /** Per shard: records applied, and how old the last one was when it was applied (DynamoDB's timestamps are approximate). */
  readonly shards: ReadonlyArray<
    { readonly shardId: string; readonly lagMillis: number | undefined; readonly records: number }
  >
  readonly eventsApplied: number
  readonly eventsPerSecond: number
  readonly quarantined: ReadonlyArray<Quarantined>
  /** Rollbacks and unauthenticated tombstones seen on the stream (see `TamperWatch`), oldest first. */
  readonly tampering: ReadonlyArray<Tampering>
  /** Shard leases this worker holds now. */
  readonly ownedShards: number
  /** ceil(active shards / live workers), as of its last look at the lease table. */
  readonly fairShare: number
  /** Workers of the group alive at that look, this one included. */
  readonly liveWorkers: number
  /** The shards held now, with the lag of their current reading (undefined until its first batch is applied). */
  readonly held: ReadonlyArray<{ readonly shardId: string; readonly lagMillis: number | undefined }>
  /** When the lease heartbeat last went through, and why it failed since, if it did. */
  readonly heartbeat: { readonly lastSuccessAt: number; readonly failure: string | undefined }
}

/** A readable account of why a projection failed: its message, else its tag, else its text. */
const describeFailure = (failure: unknown): string => {
  const message = (failure as { message?: unknown })?.message
  if (typeof message === "string" && message !== "") return message
  const tag = (failure as { _tag?: unknown })?._tag
  return typeof tag === "string" ? tag : String(failure)
}

/** A running worker. */
export class ProjectionWorker extends Context.Service<ProjectionWorker, {
  readonly owner: string
  readonly status: Effect.Effect<WorkerStatus>
}>()("dynastate/ProjectionWorker") {
  /** Runs the projections while the layer lives; leases are released when it is torn down. */
  static readonly layer = (
    projections: ReadonlyArray<Projection<unknown>>,
    options: WorkerOptions
  ): Layer.Layer<ProjectionWorker, Throttled | StorageFailure, EventTable | StreamsApi | Dynamo | HistoryArea> =>
    Layer.effect(ProjectionWorker, make(projections, options))
}

const make = Effect.fnUntraced(function*(projections: ReadonlyArray<Projection<unknown>>, options: WorkerOptions) {
  const table = yield* EventTable
  const area = yield* HistoryArea
  const context = yield* Effect.context<StreamsApi | Dynamo>()
  const owner = `worker-${randomUUID()}`
  const progress = new Map<string, { lagMillis: number | undefined; records: number; reading: number }>()
  // The oldest record of the batch being applied, per shard: a slow or stuck batch shows as lag while it runs.
  const inFlight = new Map<string, number>()
  const applied = new Map<string, number>()
  const quarantined = new Map<string, Quarantined>()
  // Present with the store's layer: removals of keys sealed in place are the migration's, not rollbacks.
  const moved = yield* Effect.serviceOption(MovedKeys)
  const tamper = TamperWatch.make(table, Option.isSome(moved) ? moved.value.movedAway : undefined)
  let eventsApplied = 0
  let window = { at: yield* Clock.currentTimeMillis, applied: 0 }

  // Rebuilt before the worker announces itself: others hand shards only to a worker ready to read them.
  for (const projection of projections) {
    if (projection.rebuild) {
      yield* projection.rebuild.pipe(
        Effect.catch((error) => Effect.logError(`rebuild of ${projection.name} failed`, error))
      )
    }
  }
  const leasing = yield* ShardLeasing.make({
    owner,
    leases: options.leases,
    leaseMillis: options.leaseMillis,
    // A shard freed for balance is left to an under-loaded worker for a lease period, or two discovery periods if
    // longer (its reader must get the chance to see it), before anyone takes it beyond its share.
    strandedMillis: Math.max(options.leaseMillis, 2 * options.reader.resyncMillis)
  }).pipe(Effect.provide(context))

  const applyOne = (projection: Projection<unknown>, event: Event, stored?: StoredEvent) =>
    Effect.gen(function*() {
      const slot = `${projection.name}\u0000${event.key}`
      if (quarantined.has(slot) || (applied.get(slot) ?? 0) >= event.seq) return
      const outcome = yield* projection.apply(eventFor(projection, event), stored).pipe(
        // A projection that throws is as poisoned as one that fails: both are retried, then quarantined.
        Effect.catchDefect((defect) => Effect.fail(defect)),
        Effect.retry({
          schedule: Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: options.maxApplyAttempts - 1 }))
        }),
        Effect.result
      )
      if (outcome._tag === "Failure") {
        // An outage is not a poisoned key: fail the batch (not acknowledged, so not checkpointed) and read it again.
        if (isOutage(outcome.failure)) return yield* Effect.fail(outcome.failure)
        const error = describeFailure(outcome.failure)
        quarantined.set(slot, { projection: projection.name, key: event.key, seq: event.seq, error })
        yield* Metric.update(quarantinedMetric, quarantined.size)
        yield* Effect.logError(`projection ${projection.name} quarantined ${event.key} at seq ${event.seq}: ${error}`)
        return
      }
      applied.delete(slot) // re-insert keeps the map in recency order for trimming
      applied.set(slot, event.seq)
      if (applied.size > 100_000) applied.delete(applied.keys().next().value!)
    })

  // A seq gap means events never reached us (trimmed stream, a lost batch): replay them from the table first.
  const applyInOrder = (projection: Projection<unknown>, event: Event, stored: StoredEvent | undefined) =>
    Effect.gen(function*() {
      const slot = `${projection.name}\u0000${event.key}`
      const last = applied.get(slot)
      if (!quarantined.has(slot) && last !== undefined && event.seq > last + 1) {
        yield* Effect.logWarning(
          `projection ${projection.name}: ${event.key} jumped from seq ${last} to ${event.seq}; replaying the gap`
        )
        // Only the missing events are decrypted; ones retention already removed or that cannot be read are said, not hidden.
        const missing = yield* History.eventsBetween(table, area, event.key, last, event.seq, {
          readChunks: readsValues(projection)
        }).pipe(
          Effect.tap((between) =>
            Effect.gen(function*() {
              if (!between.complete) {
                yield* Effect.logWarning(
                  `some events of ${event.key} between seq ${last} and ${event.seq} are no longer stored`
                )
              }
              for (const skipped of between.unreadable) {
                yield* Effect.logWarning(`skipping ${event.key} at seq ${skipped.seq}: ${skipped.reason}`)
              }
            })
          ),
          Effect.map((between) => between.events),
          Effect.catch((error) =>
            Effect.as(
              Effect.logWarning(`cannot replay the gap of ${event.key} (${error._tag}); going on`),
              [] as ReadonlyArray<Event>
            )
          )
        )
        for (const past of missing) yield* applyOne(projection, past)
      }
      yield* applyOne(projection, event, stored)
    })

  const handle = (batch: StreamBatch<unknown>) =>
    Effect.gen(function*() {
      if (yield* leasing.tookOver) {
        for (const projection of projections) if (projection.rebuild) yield* projection.rebuild
      }
      // A shard handed off or lost (or read anew) may be another worker's now: applying more of this reading
      // would break per-key order. Its next owner reads it from the checkpoint, which this batch is not in.
      if (!leasing.holds(batch)) {
        return yield* Effect.logDebug(`dropping a batch of shard ${batch.shardId}: no longer held by that reading`)
      }
      if (batch._tag === "Trimmed") {
        yield* Effect.logWarning(
          `shard ${batch.shardId} was trimmed before it was read: rebuilding projections from the table`
        )
        for (const projection of projections) if (projection.rebuild) yield* projection.rebuild
      }
      if (batch._tag === "Records") {
        const oldest = batch.records.find((record) => record.approximateCreation !== undefined)?.approximateCreation
        if (oldest !== undefined) inFlight.set(batch.shardId, oldest)
        const shard = progress.get(batch.shardId) ?? { lagMillis: undefined, records: 0, reading: batch.reading }
        // A new reading of the shard (taken again) has no lag of its own yet.
        if (shard.reading !== batch.reading) Object.assign(shard, { lagMillis: undefined, reading: batch.reading })
        // The batch's events by key, each key's in stream order (which is its seq order within a shard).
        const byKey = new Map<string, Array<{ readonly event: Event; readonly stored: StoredEvent | undefined }>>()
        for (const record of batch.records) {
          // A large value's chunks are read only for the projections that read values (see `Projection.readsValues`).
          const decoded = yield* Effect.result(eventOfRecord(table, record, (key) => valuesWanted(projections, key)))
          // An event that cannot be read must not block its shard: quarantine its key and go on.
          if (decoded._tag === "Failure") {
            const error = decoded.failure
            const key = error._tag === "DecryptionFailed" || error._tag === "Shredded"
              ? error.key
              : record.sequenceNumber
            if (error._tag === "Shredded") {
              yield* Effect.logDebug(`skipping a shredded value of ${key}`)
            } else if (error._tag === "DecryptionFailed") {
              quarantined.set(`decode\u0000${key}`, { projection: "decode", key, seq: error.seq, error: error.message })
              yield* Metric.update(quarantinedMetric, quarantined.size)
              yield* Effect.logError(
                `cannot read event ${error.seq} of ${key}: ${error.reason}; its key is quarantined`
              )
            } else {
              return yield* Effect.fail(error)
            }
          }
          const event = decoded._tag === "Success" ? decoded.success : undefined
          if (event !== undefined) yield* tamper.seen(event, !isUnauthenticatedTombstone(record.newImage))
          if (event !== undefined && !quarantined.has(`decode\u0000${event.key}`)) {
            const delivered = { event, stored: storedOfRecord(table, record) }
            const events = byKey.get(event.key)
            if (events === undefined) byKey.set(event.key, [delivered])
            else events.push(delivered)
          }
        }
        yield* Effect.forEach(
          [...byKey.values()],
          (events) =>
            Effect.forEach(events, ({ event, stored }) =>
              Effect.gen(function*() {
                for (const projection of projections) {
                  if (covers(projection, event.key)) yield* applyInOrder(projection, event, stored)
                }
                eventsApplied++
                yield* Metric.update(eventsAppliedMetric, 1)
              }), { discard: true }),
          { concurrency: options.applyConcurrency, discard: true }
        )
        // After the batch's events, so a removal is judged knowing of the events written before it.
        for (const record of batch.records) {
          const removal = removedEvent(table, record)
          if (removal !== undefined) yield* tamper.removed(removal.key, removal.seq)
        }
        // The lag is the batch's newest record's age once the whole batch is applied.
        const appliedAt = yield* Clock.currentTimeMillis
        for (const record of batch.records) {
          shard.records++
          if (record.approximateCreation !== undefined) {
            shard.lagMillis = Math.max(0, appliedAt - record.approximateCreation)
          }
        }
        // An empty batch means the reader reached the shard's newest record: nothing is waiting.
        if (batch.records.length === 0) shard.lagMillis = 0
        if (shard.lagMillis !== undefined) {
          yield* Metric.update(Metric.withAttributes(lagMetric, { shard: batch.shardId }), shard.lagMillis)
        }
        progress.set(batch.shardId, shard)
      }
      yield* batch.ack
    }).pipe(
      Effect.ensuring(Effect.sync(() => inFlight.delete(batch.shardId))),
      leasing.exclusive,
      Effect.uninterruptible
    )

  const runOnce = readStream(table.location.table, leasing.coordinator, options.reader).pipe(Stream.runForEach(handle))

  const scope = yield* Effect.scope
  const readerFiber = yield* runOnce.pipe(
    Effect.catchCause((cause) => Effect.logWarning("projection worker restarts its stream reader", cause)),
    Effect.andThen(Effect.sleep("1 second")),
    Effect.forever,
    Effect.provide(context),
    Effect.forkIn(scope)
  )
  // Shutdown: let the batch in flight finish (it is uninterruptible), stop renewing, and only then hand the leases back.
  yield* Effect.addFinalizer(() => Fiber.interrupt(readerFiber).pipe(Effect.andThen(leasing.shutdown)))

  // The rate is over the time since the previous status call, so a status line shows current throughput.
  const status = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const eventsPerSecond = (eventsApplied - window.applied) / Math.max(0.001, (now - window.at) / 1000)
    window = { at: now, applied: eventsApplied }
    const { held, ...balance } = yield* leasing.status
    return {
      ...balance,
      owner,
      held: held.map(({ reading, shardId }) => {
        const shard = progress.get(shardId)
        const applied = shard?.reading === reading ? shard.lagMillis : undefined
        const pending = inFlight.get(shardId)
        return { shardId, lagMillis: pending === undefined ? applied : Math.max(applied ?? 0, now - pending) }
      }),
      shards: [...progress].map(([shardId, { lagMillis, records }]) => ({ shardId, lagMillis, records })),
      eventsApplied,
      eventsPerSecond,
      quarantined: [...quarantined.values()],
      tampering: tamper.detected()
    } satisfies WorkerStatus
  })

  return ProjectionWorker.of({ owner, status })
})
