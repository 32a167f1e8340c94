/**
 * The projection worker assembled from configuration, with the built-in
 * projections (compaction into history, expiry), any projections of yours,
 * and a live status line.
 */
import { Duration, Effect, Layer } from "effect"
import type { Scope } from "effect"
import type { Keyring } from "../../infra/crypto/Keyring.ts"
import * as PrometheusMetrics from "../../infra/PrometheusMetrics.ts"
import { fromConfig, load } from "../../infra/StoreConfig.ts"
import type { StoreConfig } from "../../infra/StoreConfig.ts"
import { defaultCompactionOptions } from "../worker/Compaction.ts"
import type { CompactionOptions } from "../worker/Compaction.ts"
import type { Projection } from "../worker/Projection.ts"
import { duplicateName, DuplicateProjectionName } from "../worker/Projection.ts"
import type { StoreServices } from "../worker/ProjectionModule.ts"
import * as ExpiryProjection from "../worker/projections/ExpiryProjection.ts"
import * as HistoryProjection from "../worker/projections/HistoryProjection.ts"
import { defaultWorkerOptions, ProjectionWorker } from "../worker/ProjectionWorker.ts"
import type { WorkerOptions, WorkerStatus } from "../worker/ProjectionWorker.ts"
import * as StoreLive from "./StoreLive.ts"

/** One line saying what the worker is doing. */
export const formatStatus = (status: WorkerStatus): string => {
  const lags = status.shards.map((shard) => shard.lagMillis).filter((lag): lag is number => lag !== undefined)
  const lag = lags.length === 0 ? "-" : Duration.format(Duration.millis(Math.max(...lags)))
  return `worker ${
    status.owner.slice(7, 15)
  }: ${status.ownedShards}/${status.fairShare} shards (${status.liveWorkers} workers), lag ${lag}, ` +
    `${status.eventsApplied} events (${status.eventsPerSecond.toFixed(1)}/s), ${status.quarantined.length} quarantined`
}

/**
 * The worker with the built-in projections plus `extra`, over the store's services.
 * Fails with `DuplicateProjectionName` if two projections share a name (yours cannot be named "history" or "expiry").
 */
export const workerLayer = (
  options: WorkerOptions,
  compaction: CompactionOptions = defaultCompactionOptions,
  extra: ReadonlyArray<Projection<unknown>> = []
) =>
  Layer.unwrap(Effect.gen(function*() {
    const history = yield* HistoryProjection.make(compaction)
    const expiry = yield* ExpiryProjection.make
    const projections = [history, expiry, ...extra]
    const duplicate = duplicateName(projections)
    if (duplicate !== undefined) return yield* new DuplicateProjectionName({ projection: duplicate })
    return ProjectionWorker.layer(projections, options)
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

/** Compaction as the configuration says: its retention, its settle time, checked against the writers' fence. */
export const compactionOptions = (config: StoreConfig): CompactionOptions => ({
  ...defaultCompactionOptions,
  retention: config.historyRetention,
  settleMillis: config.settleMillis,
  writerFence: config.writeFence
})

type UserProjections<E> = Effect.Effect<ReadonlyArray<Projection<unknown>>, E, StoreServices | Scope.Scope>

const assemble = <E, E2>(config: StoreConfig, store: Layer.Layer<StoreServices, E2>, projections: UserProjections<E>) =>
  statusLine().pipe(
    Layer.provideMerge(
      Layer.unwrap(
        Effect.map(
          projections,
          (extra) => workerLayer(defaultWorkerOptions(config.tableName), compactionOptions(config), extra)
        )
      )
    ),
    Layer.provideMerge(store),
    // The metrics endpoint (when `metrics_port` is set) serves what the worker records.
    Layer.merge(PrometheusMetrics.layerFromConfig(config))
  )

/**
 * Store, worker (keeping history as `history_retention` says, settling events for `compaction_settle`), status line and, with `metrics_port`, the
 * Prometheus endpoint for a configuration.
 * `projections` makes the projections of yours to run beside the built-in ones (e.g. a loaded
 * `ProjectionModule`); it may use the store's services, and what it starts lives as long as the layer.
 */
export const layer = <E = never>(config: StoreConfig, projections: UserProjections<E> = Effect.succeed([])) =>
  assemble(config, StoreLive.layer(config), projections)

/** The worker over SDK clients of the application's (see `StoreLive.layerClients`). */
export const layerClients = <E = never, E2 = never>(
  config: StoreConfig,
  clients: StoreLive.Clients & { readonly keyring?: Layer.Layer<Keyring, E2> | undefined },
  projections: UserProjections<E> = Effect.succeed([])
) => assemble(config, StoreLive.layerClients(config, clients), projections)

/** The worker configured through Effect's `Config` (the current `ConfigProvider`, keys under `storage`). */
export const layerConfig = <E = never>(projections: UserProjections<E> = Effect.succeed([])) =>
  Layer.unwrap(Effect.map(fromConfig, (config) => layer(config, projections)))

/** The worker configured by the YAML file (`file`, or `DYNASTATE_CONFIG`) and `DYNASTATE_*` variables. */
export const layerFile = <E = never>(
  options: { readonly file?: string | undefined; readonly env?: Record<string, string | undefined> | undefined } = {},
  projections: UserProjections<E> = Effect.succeed([])
) => Layer.unwrap(Effect.map(load(options), (config) => layer(config, projections)))
