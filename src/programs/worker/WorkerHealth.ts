/**
 * The projection worker's health as a process supervisor and a load balancer
 * see it, sampled by a monitor fiber:
 *
 * - alive while the monitor keeps sampling (the process's fibers run);
 * - ready while the lease heartbeat goes through (leases can be held) and
 *   every shard the worker holds is read within `readyMaxLagMillis` of its
 *   newest record. A worker that holds no shard because the others hold their
 *   fair share is ready: it stands by, allowed to take shards.
 *
 * The monitor also keeps the worker's gauges current; every dynastate metric
 * is registered with a zero value when the monitor starts, so a scrape of a
 * worker holding no shard still shows them all.
 */
import { Clock, Context, Duration, Effect, Layer, Metric, Schedule } from "effect"
import { expiryRecordFailures } from "../store/ExpiryRecording.ts"
import { eventsAppliedMetric, lagMetric, ProjectionWorker, quarantinedMetric } from "./ProjectionWorker.ts"
import type { WorkerStatus } from "./ProjectionWorker.ts"
import { tamperingMetric } from "./TamperWatch.ts"

/** Shard leases the worker holds. */
export const shardsHeldMetric = Metric.gauge("dynastate_worker_shards_held", {
  description: "shard leases this worker holds"
})

/** The worker's fair share of the shards, as it last saw the group. */
export const fairShareMetric = Metric.gauge("dynastate_worker_fair_share", {
  description: "shards this worker may hold: ceil(active shards / live workers)"
})

/** Live workers of the group, this one included. */
export const liveWorkersMetric = Metric.gauge("dynastate_worker_live_workers", {
  description: "live workers of the group, this one included"
})

/** The largest lag of the shards held (0 when none is held). */
export const maxLagMetric = Metric.gauge("dynastate_worker_max_lag_ms", {
  description: "largest lag of the shards this worker holds, in ms (0 when it holds none)"
})

/** 1 while the worker is ready, 0 otherwise. */
export const readyMetric = Metric.gauge("dynastate_worker_ready", {
  description: "1 while the worker is ready (see /readyz), 0 otherwise"
})

/** When the worker is ready, and how often it is looked at. */
export interface HealthOptions {
  /** Every held shard must be read within this lag of its newest record. */
  readonly readyMaxLagMillis: number
  /** The worker's lease period: a heartbeat failing for longer means its leases cannot be held. */
  readonly leaseMillis: number
  /** How often the monitor samples the worker. */
  readonly sampleMillis: number
}

/** Whether the worker is ready, and each reason it is not. */
export interface Readiness {
  readonly ready: boolean
  readonly reasons: ReadonlyArray<string>
}

const seconds = (millis: number) => Duration.format(Duration.millis(millis))

/** Readiness from a status sampled at `now`. */
export const readiness = (
  status: WorkerStatus,
  now: number,
  options: Pick<HealthOptions, "readyMaxLagMillis" | "leaseMillis">
): Readiness => {
  const reasons: Array<string> = []
  const silentFor = now - status.heartbeat.lastSuccessAt
  if (status.heartbeat.failure !== undefined && silentFor > options.leaseMillis) {
    reasons.push(
      `leases cannot be held: the lease heartbeat has failed for ${seconds(silentFor)} ` +
        `(${status.heartbeat.failure})`
    )
  }
  for (const shard of status.held) {
    if (shard.lagMillis === undefined) {
      reasons.push(`shard ${shard.shardId}: not read to its newest record yet`)
    } else if (shard.lagMillis > options.readyMaxLagMillis) {
      reasons.push(
        `shard ${shard.shardId}: ${seconds(shard.lagMillis)} behind, more than ready_max_lag ` +
          seconds(options.readyMaxLagMillis)
      )
    }
  }
  return { ready: reasons.length === 0, reasons }
}

/** One look at the worker. */
export interface Health {
  readonly status: WorkerStatus
  readonly readiness: Readiness
  readonly sampledAt: number
}

/** The worker's health, kept current by a monitor fiber while the layer lives. */
export class WorkerHealth extends Context.Service<WorkerHealth, {
  /** The latest sample. */
  readonly current: Effect.Effect<Health>
  /** Alive: the monitor sampled within three periods (else how long ago it last did). */
  readonly alive: Effect.Effect<{ readonly alive: boolean; readonly sinceMillis: number }>
}>()("dynastate/WorkerHealth") {
  /** Starts the monitor (registering every metric at zero) for the worker of the context. */
  static readonly layer = (options: HealthOptions): Layer.Layer<WorkerHealth, never, ProjectionWorker> =>
    Layer.effect(WorkerHealth, make(options))
}

/** Registers every dynastate metric, so the first scrape shows them all (counters at 0). */
const registerMetrics = Effect.all([
  Metric.update(eventsAppliedMetric, 0),
  Metric.update(Metric.withAttributes(tamperingMetric, { kind: "rollback" }), 0),
  Metric.update(Metric.withAttributes(tamperingMetric, { kind: "unauthenticated" }), 0),
  Metric.update(expiryRecordFailures, 0),
  Metric.value(lagMetric)
], { discard: true })

const make = Effect.fnUntraced(function*(options: HealthOptions) {
  const worker = yield* ProjectionWorker
  yield* registerMetrics
  const sample = Effect.gen(function*() {
    const status = yield* worker.status
    const now = yield* Clock.currentTimeMillis
    const health: Health = { status, readiness: readiness(status, now, options), sampledAt: now }
    const lags = status.held.map((shard) => shard.lagMillis ?? 0)
    yield* Effect.all([
      Metric.update(shardsHeldMetric, status.ownedShards),
      Metric.update(fairShareMetric, status.fairShare),
      Metric.update(liveWorkersMetric, status.liveWorkers),
      Metric.update(maxLagMetric, lags.length === 0 ? 0 : Math.max(...lags)),
      Metric.update(quarantinedMetric, status.quarantined.length),
      Metric.update(readyMetric, health.readiness.ready ? 1 : 0)
    ], { discard: true })
    return health
  })
  let latest = yield* sample
  yield* sample.pipe(
    Effect.map((health) => {
      latest = health
    }),
    Effect.repeat(Schedule.spaced(options.sampleMillis)),
    Effect.forkScoped
  )
  return WorkerHealth.of({
    current: Effect.sync(() => latest),
    alive: Effect.map(Clock.currentTimeMillis, (now) => {
      const sinceMillis = now - latest.sampledAt
      return { alive: sinceMillis <= 3 * options.sampleMillis + 1_000, sinceMillis }
    })
  })
})
