/**
 * The projection worker assembled from configuration, with the built-in
 * projections (compaction into history, expiry) and a live status line.
 */
import { Duration, Effect, Layer } from "effect"
import type { StoreConfig } from "../infra/StoreConfig.ts"
import type { Projection } from "./Projection.ts"
import * as ExpiryProjection from "./projections/ExpiryProjection.ts"
import * as HistoryProjection from "./projections/HistoryProjection.ts"
import type { Retention } from "./projections/HistoryProjection.ts"
import { defaultWorkerOptions, ProjectionWorker } from "./ProjectionWorker.ts"
import type { WorkerOptions, WorkerStatus } from "./ProjectionWorker.ts"
import * as StoreLive from "./StoreLive.ts"

/** One line saying what the worker is doing. */
export const formatStatus = (status: WorkerStatus): string => {
  const lags = status.shards.map((shard) => shard.lagMillis).filter((lag): lag is number => lag !== undefined)
  const lag = lags.length === 0 ? "-" : Duration.format(Duration.millis(Math.max(...lags)))
  return `worker ${status.owner.slice(7, 15)}: ${status.shards.length} shards, lag ${lag}, ` +
    `${status.eventsApplied} events (${status.eventsPerSecond.toFixed(1)}/s), ${status.quarantined.length} quarantined`
}

/** The worker with the built-in projections plus `extra`, over the store's services. */
export const workerLayer = (
  options: WorkerOptions,
  retention: Retention = { _tag: "Forever" },
  extra: ReadonlyArray<Projection<unknown>> = []
) =>
  Layer.unwrap(Effect.gen(function*() {
    const history = yield* HistoryProjection.make(retention)
    const expiry = yield* ExpiryProjection.make
    return ProjectionWorker.layer([history, expiry, ...extra], options)
  }))

/** Logs the status line every `every` while the layer lives. */
export const statusLine = (every: Duration.Input = "5 seconds") =>
  Layer.effectDiscard(
    Effect.sleep(every).pipe(
      Effect.andThen(ProjectionWorker.use((worker) => worker.status)),
      Effect.flatMap((status) => Effect.logInfo(formatStatus(status))),
      Effect.forever,
      Effect.forkScoped
    )
  )

/** Store, worker and status line for a configuration. */
export const layer = (config: StoreConfig) =>
  statusLine().pipe(
    Layer.provideMerge(workerLayer(defaultWorkerOptions(config.tableName))),
    Layer.provideMerge(StoreLive.layer(config))
  )

