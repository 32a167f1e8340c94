/**
 * The projection worker assembled from configuration, as a service: the
 * built-in projections (compaction into history, expiry) and any of yours, a
 * status line logged when something changed, with `metrics_port` the HTTP
 * endpoint (`/metrics`, `/healthz`, `/readyz`), with `otlp_endpoint` (or
 * `OTEL_EXPORTER_OTLP_ENDPOINT`) OpenTelemetry traces and metrics, with `watch_port` watches served to
 * application processes (`WatchRelay`), and a
 * deadline (`shutdown_timeout`) on a graceful stop.
 */
import { Duration, Effect, Layer, Option } from "effect"
import type { Scope } from "effect"
import { FetchHttpClient } from "effect/http"
import * as OtlpMetrics from "effect/observability/OtlpMetrics"
import * as OtlpSerialization from "effect/observability/OtlpSerialization"
import * as OtlpTracer from "effect/observability/OtlpTracer"
import type { Keyring } from "../../infra/crypto/Keyring.ts"
import { fromConfig, load } from "../../infra/StoreConfig.ts"
import type { StoreConfig } from "../../infra/StoreConfig.ts"
import * as RelayTls from "../../infra/streams/RelayTls.ts"
import { ChunkCollector, defaultCollectorOptions } from "../worker/ChunkCollector.ts"
import { defaultCompactionOptions } from "../worker/Compaction.ts"
import type { CompactionOptions } from "../worker/Compaction.ts"
import type { Projection } from "../worker/Projection.ts"
import { duplicateName, DuplicateProjectionName } from "../worker/Projection.ts"
import type { StoreServices } from "../worker/ProjectionModule.ts"
import * as ExpiryProjection from "../worker/projections/ExpiryProjection.ts"
import * as HistoryProjection from "../worker/projections/HistoryProjection.ts"
import { defaultWorkerOptions, ProjectionWorker } from "../worker/ProjectionWorker.ts"
import type { WorkerOptions, WorkerStatus } from "../worker/ProjectionWorker.ts"
import * as WatchRelay from "../worker/WatchRelay.ts"
import { WorkerHealth } from "../worker/WorkerHealth.ts"
import type { Health, Readiness } from "../worker/WorkerHealth.ts"
import * as StoreLive from "./StoreLive.ts"
import * as WorkerHttp from "./WorkerHttp.ts"

/** One line saying what the worker is doing (and, when not ready, why). */
export const formatStatus = (status: WorkerStatus, readiness?: Readiness): string => {
  const lags = status.held.map((shard) => shard.lagMillis).filter((lag): lag is number => lag !== undefined)
  const lag = lags.length === 0 ? "-" : Duration.format(Duration.millis(Math.max(...lags)))
  const ready = readiness === undefined
    ? ""
    : readiness.ready
    ? ", ready"
    : `, not ready: ${readiness.reasons.join("; ")}`
  return `worker ${
    status.owner.slice(7, 15)
  }: ${status.ownedShards}/${status.fairShare} shards (${status.liveWorkers} workers), lag ${lag}, ` +
    `${status.eventsApplied} events (${
      status.eventsPerSecond.toFixed(1)
    }/s), ${status.quarantined.length} quarantined` +
    (status.tampering.length === 0 ? "" : `, ${status.tampering.length} TAMPERING detected`) +
    ready
}

/**
 * The worker with the built-in projections plus `extra`, and the collection of orphaned chunks, over the store's
 * services.
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
    // Orphaned chunks are collected after the compaction's settle time: by then no append decided with them lands.
    const collector = ChunkCollector.layer({ ...defaultCollectorOptions, graceMillis: compaction.settleMillis })
    return Layer.merge(ProjectionWorker.layer(projections, options), collector)
  }))

/** What the status line says, less its rates and lags (which move all the time): a line is logged when it changes. */
const statusKey = ({ readiness, status }: Health): string =>
  JSON.stringify([
    status.ownedShards,
    status.fairShare,
    status.liveWorkers,
    status.eventsApplied,
    status.quarantined.length,
    status.tampering.length,
    readiness.ready,
    readiness.reasons.length
  ])

/** Looks at the worker every `every` while the layer lives and logs its status line when something changed. */
export const statusLine = (every: Duration.Input = "5 seconds") =>
  Layer.effectDiscard(Effect.gen(function*() {
    const health = yield* WorkerHealth
    let logged = ""
    let last: { readonly at: number; readonly applied: number } | undefined
    const look = Effect.gen(function*() {
      const current = yield* health.current
      const key = statusKey(current)
      if (key === logged) return
      logged = key
      const { status } = current
      // The rate since the previous line (the worker's own for the first).
      const eventsPerSecond = last === undefined
        ? status.eventsPerSecond
        : Math.max(0, status.eventsApplied - last.applied) / Math.max(0.001, (current.sampledAt - last.at) / 1000)
      last = { at: current.sampledAt, applied: status.eventsApplied }
      yield* Effect.logInfo(formatStatus({ ...status, eventsPerSecond }, current.readiness))
    })
    yield* look.pipe(Effect.andThen(Effect.sleep(every)), Effect.forever, Effect.forkScoped)
  }))

/** Compaction as the configuration says: its retention, its settle time, checked against the writers' fence. */
export const compactionOptions = (config: StoreConfig): CompactionOptions => ({
  ...defaultCompactionOptions,
  retention: config.historyRetention,
  settleMillis: config.settleMillis,
  writerFence: config.writeFence,
  writerMode: config.writeMode
})

/**
 * OpenTelemetry traces and metrics over OTLP/HTTP (JSON) to `otlp_endpoint` (`/v1/traces`, `/v1/metrics` below
 * it), with Effect's own exporters; the service is named by `OTEL_SERVICE_NAME`, else `dynastate-worker`. Nothing
 * when no endpoint is configured.
 */
export const telemetryLayer = (
  config: Pick<StoreConfig, "otlpEndpoint">,
  options: { readonly serviceName?: string | undefined; readonly exportInterval?: Duration.Input | undefined } = {}
): Layer.Layer<never> =>
  Option.match(config.otlpEndpoint, {
    onNone: () => Layer.empty,
    onSome: (endpoint) => {
      const base = endpoint.replace(/\/+$/, "")
      const resource = { serviceName: options.serviceName ?? process.env.OTEL_SERVICE_NAME ?? "dynastate-worker" }
      return Layer.mergeAll(
        OtlpTracer.layer({ url: `${base}/v1/traces`, resource, exportInterval: options.exportInterval }),
        OtlpMetrics.layer({ url: `${base}/v1/metrics`, resource, exportInterval: options.exportInterval })
      ).pipe(
        Layer.provide([OtlpSerialization.layerJson, FetchHttpClient.layer])
      )
    }
  })

/**
 * Bounds a graceful stop of `layer`: once it starts closing (SIGTERM and SIGINT interrupt the program, which closes
 * it: the reader finishes and checkpoints its batch in flight, then the leases are released), `exit` runs if the
 * stop has not finished within `millis` — by default the process exits with status 1, its leases left to expire.
 */
export const withShutdownDeadline =
  (millis: number, exit: (code: number) => void = (code) => process.exit(code)) =>
  <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, Exclude<R, Scope.Scope>> =>
    Layer.effectContext(Effect.gen(function*() {
      const scope = yield* Effect.scope
      let timer: ReturnType<typeof setTimeout> | undefined
      // Added first, so run last: the stop finished in time.
      yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(timer)))
      const context = yield* Layer.buildWithScope(layer, scope)
      // Added last, so run first: the stop begins.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          const services = yield* Effect.context<never>()
          timer = setTimeout(() => {
            Effect.runForkWith(services)(
              Effect.logError(
                `the worker did not stop within shutdown_timeout ${Duration.format(Duration.millis(millis))}: ` +
                  "exiting; its leases expire by themselves"
              )
            )
            exit(1)
          }, millis)
          // Never what keeps the process alive: a stop that finishes lets it exit at once.
          timer.unref()
          yield* Effect.logInfo(
            `stopping the worker: finishing the batch in flight and releasing its leases (at most ${
              Duration.format(Duration.millis(millis))
            })`
          )
        })
      )
      return context
    }))

/** The HTTP endpoint a configuration asks for (`metrics_port`, `metrics_host`), or nothing. */
const endpointLayer = (config: StoreConfig): Layer.Layer<never, WorkerHttp.EndpointUnavailable, WorkerHealth> =>
  Option.match(config.metricsPort, {
    onNone: () => Layer.empty,
    onSome: (port) =>
      Layer.effectDiscard(Effect.void).pipe(Layer.provide(WorkerHttp.layer({ host: config.metricsHost, port })))
  })

/**
 * The watch relay a configuration asks for (`watch_port`, `watch_host`), or nothing: off by default, because the
 * port is a service of its own to secure (see `WatchRelay`), and one relay per lease group is what the stream's
 * limit allows.
 */
const relayLayer = (config: StoreConfig, leases: WorkerOptions["leases"]) =>
  Option.match(config.watchPort, {
    onNone: () => Layer.empty,
    onSome: (port) =>
      Layer.unwrap(Effect.map(RelayTls.load(config.watchTls), (tls) =>
        Layer.effectDiscard(Effect.void).pipe(
          Layer.provide(WatchRelay.layer({ host: config.watchHost, port, tls }, { leases, capacity: 4096 }))
        )))
  })

type UserProjections<E> = Effect.Effect<ReadonlyArray<Projection<unknown>>, E, StoreServices | Scope.Scope>

const assemble = <E, E2>(
  config: StoreConfig,
  store: Layer.Layer<StoreServices, E2>,
  projections: UserProjections<E>
) => {
  const defaults = defaultWorkerOptions(config.tableName)
  const options = { ...defaults, leases: { ...defaults.leases, group: config.leaseGroup } }
  const worker = Layer.unwrap(
    Effect.map(projections, (extra) => workerLayer(options, compactionOptions(config), extra))
  )
  const health = WorkerHealth.layer({
    readyMaxLagMillis: config.readyMaxLagMillis,
    leaseMillis: options.leaseMillis,
    sampleMillis: 1_000
  })
  return Layer.mergeAll(statusLine(), endpointLayer(config), relayLayer(config, options.leases)).pipe(
    Layer.provideMerge(health),
    Layer.provideMerge(worker),
    Layer.provideMerge(store),
    Layer.provideMerge(telemetryLayer(config)),
    withShutdownDeadline(config.shutdownTimeoutMillis)
  )
}

/**
 * Store, worker (keeping history as `history_retention` says, settling events for `compaction_settle`), health,
 * status line, and as configured the HTTP endpoint, OpenTelemetry export and the shutdown deadline.
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
