/**
 * The projection worker: follows the table's stream and runs projections on
 * every event, in per-key order, at least once, sharing the stream's shards
 * with other worker processes through leases.
 *
 * - A shard is read by the worker holding its lease; leases expire unless
 *   renewed, so a crashed worker's shards are taken over within about one
 *   lease period. The lease epoch fences checkpoints: a worker that lost a
 *   shard can no longer record progress on it.
 * - A batch is applied and checkpointed as one uninterruptible step, so
 *   shutdown finishes it or never starts it; leases are then released.
 * - A projection that keeps failing on an event quarantines that key for
 *   that projection (logged, kept in the status) and the worker goes on.
 */
import { randomUUID } from "node:crypto"
import { Clock, Context, Effect, Fiber, Layer, Metric, Schedule, Stream } from "effect"
import type { Event } from "../domain/Event.ts"
import { EventTable } from "../infra/EventTable.ts"
import * as ProjectionLeases from "../infra/ProjectionLeases.ts"
import type { LeaseLocation, ShardLease } from "../infra/ProjectionLeases.ts"
import type { Dynamo } from "../infra/Dynamo.ts"
import type { ShardCoordinator, StreamBatch } from "../infra/streams/StreamReader.ts"
import { defaultStreamReaderOptions, readStream } from "../infra/streams/StreamReader.ts"
import type { StreamReaderOptions } from "../infra/streams/StreamReader.ts"
import type { ShardPosition, StreamsApi } from "../infra/streams/StreamsApi.ts"
import type { StorageFailure, Throttled } from "../domain/Errors.ts"
import type { Projection } from "./Projection.ts"
import { covers } from "./Projection.ts"
import { eventOfRecord } from "../infra/streams/StreamEvents.ts"
import * as History from "./History.ts"
import { HistoryArea } from "../infra/HistoryArea.ts"

/** Events applied by the worker (each event counts once, whatever number of projections ran on it). */
export const eventsAppliedMetric = Metric.counter("dynastate_worker_events_applied", {
  description: "stream events applied by the projection worker",
  incremental: true
})

/** Age of the last applied record when it was applied, per shard (milliseconds). */
export const lagMetric = Metric.gauge("dynastate_worker_lag_ms", { description: "age of the last applied stream record" })

/** Keys quarantined by a failing projection. */
export const quarantinedMetric = Metric.gauge("dynastate_worker_quarantined_keys", { description: "keys a projection gave up on" })

/** How a worker runs. */
export interface WorkerOptions {
  readonly leases: LeaseLocation
  /** A lease not renewed for this long may be taken over. */
  readonly leaseMillis: number
  /** Attempts of a projection on one event before its key is quarantined. */
  readonly maxApplyAttempts: number
  readonly reader: StreamReaderOptions
}

/** Defaults: shards of a dead worker move within about 20 seconds. */
export const defaultWorkerOptions = (table: string): WorkerOptions => ({
  leases: { table: `${table}.projections`, group: "default" },
  leaseMillis: 15_000,
  maxApplyAttempts: 5,
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
  readonly shards: ReadonlyArray<{ readonly shardId: string; readonly lagMillis: number | undefined; readonly records: number }>
  readonly eventsApplied: number
  readonly eventsPerSecond: number
  readonly quarantined: ReadonlyArray<Quarantined>
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
  const owned = new Map<string, { readonly arn: string; lease: ShardLease }>()
  const progress = new Map<string, { lagMillis: number | undefined; records: number }>()
  const applied = new Map<string, number>()
  const quarantined = new Map<string, Quarantined>()
  let eventsApplied = 0
  let takenOver = false
  let window = { at: yield* Clock.currentTimeMillis, applied: 0 }

  yield* ProjectionLeases.ensureTable(options.leases.table)

  const withDynamo = Effect.provide(context)
  const coordinator: ShardCoordinator<ProjectionLeases.LeaseLost | Throttled | StorageFailure> = {
    acquire: (arn, shard) =>
      ProjectionLeases.acquire(options.leases, arn, shard.shardId, owner, options.leaseMillis, shard.parentShardId).pipe(
        withDynamo,
        Effect.map((lease): ShardPosition | undefined => {
          if (lease === undefined) return undefined
          // Taking over another worker's shard: state kept in memory (upcoming expiries) missed what it applied.
          if (lease.checkpoint !== undefined && lease.epoch > 1) takenOver = true
          owned.set(shard.shardId, { arn, lease })
          return lease.checkpoint === undefined ? { _tag: "TrimHorizon" } : { _tag: "After", sequenceNumber: lease.checkpoint }
        })
      ),
    isFinished: (arn, shardId) => Effect.map(ProjectionLeases.read(options.leases, arn, shardId).pipe(withDynamo), (lease) => lease.finished),
    checkpoint: (arn, shardId, sequenceNumber, ended) =>
      Effect.gen(function*() {
        const held = owned.get(shardId)
        if (held === undefined) return yield* new ProjectionLeases.LeaseLost({ shardId })
        yield* ProjectionLeases.checkpoint(options.leases, arn, held.lease, owner, sequenceNumber, ended).pipe(withDynamo)
        if (ended) owned.delete(shardId)
      })
  }

  const applyOne = (projection: Projection<unknown>, event: Event) =>
    Effect.gen(function*() {
      const slot = `${projection.name}\u0000${event.key}`
      if (quarantined.has(slot) || (applied.get(slot) ?? 0) >= event.seq) return
      const outcome = yield* projection.apply(event).pipe(
        // A projection that throws is as poisoned as one that fails: both are retried, then quarantined.
        Effect.catchDefect((defect) => Effect.fail(defect)),
        Effect.retry({ schedule: Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: options.maxApplyAttempts - 1 })) }),
        Effect.result
      )
      if (outcome._tag === "Failure") {
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
  const applyInOrder = (projection: Projection<unknown>, event: Event) =>
    Effect.gen(function*() {
      const slot = `${projection.name}\u0000${event.key}`
      const last = applied.get(slot)
      if (!quarantined.has(slot) && last !== undefined && event.seq > last + 1) {
        yield* Effect.logWarning(`projection ${projection.name}: ${event.key} jumped from seq ${last} to ${event.seq}; replaying the gap`)
        const missing = yield* History.events(table, area, event.key).pipe(
          Stream.filter((past) => past.seq > last && past.seq < event.seq),
          Stream.runCollect,
          Effect.catch((error) =>
            Effect.as(Effect.logWarning(`cannot replay the gap of ${event.key} (${error._tag}); going on`), [] as ReadonlyArray<Event>)
          )
        )
        for (const past of missing) yield* applyOne(projection, past)
      }
      yield* applyOne(projection, event)
    })

  const handle = (batch: StreamBatch<unknown>) =>
    Effect.gen(function*() {
      if (takenOver) {
        takenOver = false
        for (const projection of projections) if (projection.rebuild) yield* projection.rebuild
      }
      if (batch._tag === "Trimmed") {
        yield* Effect.logWarning(`shard ${batch.shardId} was trimmed before it was read: rebuilding projections from the table`)
        for (const projection of projections) if (projection.rebuild) yield* projection.rebuild
      }
      // A shard whose lease was lost may be another worker's now: applying more of it would break per-key order.
      if (batch._tag !== "Started" && !owned.has(batch.shardId)) return yield* new ProjectionLeases.LeaseLost({ shardId: batch.shardId })
      if (batch._tag === "Records") {
        const now = yield* Clock.currentTimeMillis
        const shard = progress.get(batch.shardId) ?? { lagMillis: undefined, records: 0 }
        for (const record of batch.records) {
          const decoded = yield* Effect.result(eventOfRecord(table, record))
          // An event that cannot be read must not block its shard: quarantine its key and go on.
          if (decoded._tag === "Failure") {
            const error = decoded.failure
            const key = error._tag === "DecryptionFailed" || error._tag === "Shredded" ? error.key : record.sequenceNumber
            if (error._tag === "Shredded") {
              yield* Effect.logDebug(`skipping a shredded value of ${key}`)
            } else if (error._tag === "DecryptionFailed") {
              quarantined.set(`decode\u0000${key}`, { projection: "decode", key, seq: error.seq, error: error.message })
              yield* Metric.update(quarantinedMetric, quarantined.size)
              yield* Effect.logError(`cannot read event ${error.seq} of ${key}: ${error.reason}; its key is quarantined`)
            } else {
              return yield* Effect.fail(error)
            }
          }
          const event = decoded._tag === "Success" ? decoded.success : undefined
          if (event !== undefined && !quarantined.has(`decode\u0000${event.key}`)) {
            for (const projection of projections) if (covers(projection, event.key)) yield* applyInOrder(projection, event)
            eventsApplied++
            yield* Metric.update(eventsAppliedMetric, 1)
          }
          shard.records++
          if (record.approximateCreation !== undefined) shard.lagMillis = Math.max(0, now - record.approximateCreation)
        }
        if (shard.lagMillis !== undefined) {
          yield* Metric.update(Metric.withAttributes(lagMetric, { shard: batch.shardId }), shard.lagMillis)
        }
        progress.set(batch.shardId, shard)
      }
      yield* batch.ack
    }).pipe(Effect.uninterruptible)

  const heartbeat = Effect.gen(function*() {
    for (const [shardId, held] of owned) {
      yield* ProjectionLeases.renew(options.leases, held.arn, held.lease, owner, options.leaseMillis).pipe(
        Effect.catchTag("LeaseLost", () =>
          Effect.sync(() => owned.delete(shardId)).pipe(Effect.andThen(Effect.logWarning(`lost the lease of shard ${shardId}`))))
      )
    }
  }).pipe(Effect.catch((error) => Effect.logWarning(`lease heartbeat failed: ${error._tag}`)))

  const runOnce = readStream(table.location.table, coordinator, options.reader).pipe(Stream.runForEach(handle))

  const scope = yield* Effect.scope
  for (const projection of projections) {
    if (projection.rebuild) yield* projection.rebuild.pipe(Effect.catch((error) => Effect.logError(`rebuild of ${projection.name} failed`, error)))
  }
  const heartbeatFiber = yield* heartbeat.pipe(
    Effect.repeat(Schedule.spaced(Math.max(100, Math.floor(options.leaseMillis / 3)))),
    Effect.provide(context),
    Effect.forkIn(scope)
  )
  const readerFiber = yield* runOnce.pipe(
    Effect.catchCause((cause) => Effect.logWarning("projection worker restarts its stream reader", cause)),
    Effect.andThen(Effect.sleep("1 second")),
    Effect.forever,
    Effect.provide(context),
    Effect.forkIn(scope)
  )
  // Shutdown: let the batch in flight finish (it is uninterruptible), stop renewing, and only then hand the leases back.
  yield* Effect.addFinalizer(() =>
    Fiber.interrupt(readerFiber).pipe(
      Effect.andThen(Fiber.interrupt(heartbeatFiber)),
      Effect.andThen(Effect.forEach([...owned], ([_shardId, held]) =>
        ProjectionLeases.release(options.leases, held.arn, held.lease, owner).pipe(Effect.ignore), { discard: true })),
      Effect.provide(context),
      Effect.andThen(Effect.logInfo(`released ${owned.size} shard leases`))
    )
  )

  // The rate is over the time since the previous status call, so a status line shows current throughput.
  const status = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const eventsPerSecond = (eventsApplied - window.applied) / Math.max(0.001, (now - window.at) / 1000)
    window = { at: now, applied: eventsApplied }
    return {
      owner,
      shards: [...progress].map(([shardId, shard]) => ({ shardId, ...shard })),
      eventsApplied,
      eventsPerSecond,
      quarantined: [...quarantined.values()]
    } satisfies WorkerStatus
  })

  return ProjectionWorker.of({ owner, status })
})
