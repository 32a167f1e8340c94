/**
 * The worker's HTTP endpoint, served with Effect's HTTP server: `/metrics`
 * (Effect's metrics in the Prometheus text format, by
 * `effect/observability/PrometheusMetrics`), `/healthz` (alive) and `/readyz`
 * (ready: leases can be held and every held shard is read within
 * `ready_max_lag`; 503 with the reasons otherwise), for a Prometheus scraper,
 * a process supervisor and a load balancer.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Schema } from "effect"
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as http from "node:http"
import { WorkerHealth } from "../worker/WorkerHealth.ts"

/** The endpoint could not listen (port taken, address not local, no permission). */
export class EndpointUnavailable extends Schema.TaggedError<EndpointUnavailable>()("EndpointUnavailable", {
  host: Schema.String,
  port: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `cannot serve the worker's endpoint on ${this.host}:${this.port}: ${this.reason}`
  }
}

/** Where the endpoint listens. */
export interface EndpointOptions {
  /** An address or host name; `0.0.0.0` or `::` for every interface. */
  readonly host: string
  /** 0 picks a free port (read it from {@link WorkerEndpoint}). */
  readonly port: number
}

/** The running endpoint. */
export class WorkerEndpoint extends Context.Service<WorkerEndpoint, {
  /** `http://host:port`, the paths `/metrics`, `/healthz` and `/readyz` below it. */
  readonly url: string
}>()("dynastate/WorkerEndpoint") {}

const describe = (cause: unknown): string => {
  const code = (cause as { code?: unknown })?.code
  const message = String((cause as { message?: unknown })?.message ?? cause)
  return typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message
}

const routes = Layer.unwrap(Effect.gen(function*() {
  const health = yield* WorkerHealth
  const healthz = Effect.map(health.alive, ({ alive, sinceMillis }) =>
    alive
      ? HttpServerResponse.text("ok\n")
      : HttpServerResponse.text(`stalled: the worker's monitor last ran ${sinceMillis} ms ago\n`, { status: 503 }))
  const readyz = Effect.map(health.current, ({ readiness, status }) =>
    HttpServerResponse.jsonUnsafe({
      ready: readiness.ready,
      reasons: readiness.reasons,
      shardsHeld: status.ownedShards,
      fairShare: status.fairShare,
      liveWorkers: status.liveWorkers,
      shards: status.held
    }, { status: readiness.ready ? 200 : 503 }))
  return Layer.mergeAll(
    PrometheusMetrics.layerHttp({ path: "/metrics" }),
    HttpRouter.add("GET", "/healthz", healthz),
    HttpRouter.add("GET", "/readyz", readyz)
  )
}))

/** Serves `/metrics`, `/healthz` and `/readyz` while the layer lives, from Effect's default metric registry. */
export const layer = (options: EndpointOptions): Layer.Layer<WorkerEndpoint, EndpointUnavailable, WorkerHealth> => {
  // Scrapes and probes come every few seconds: no log line per request.
  const serve = HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true })
  const endpoint = Layer.effect(
    WorkerEndpoint,
    Effect.gen(function*() {
      const url = HttpServer.formatAddress((yield* HttpServer.HttpServer).address)
      yield* Effect.logInfo(`worker endpoint at ${url}: /metrics, /healthz, /readyz`)
      return WorkerEndpoint.of({ url })
    })
  )
  return Layer.merge(serve, endpoint).pipe(
    Layer.provide(NodeHttpServer.layer(() => http.createServer(), { host: options.host, port: options.port })),
    // Nor a span: a trace per probe would drown the worker's own.
    Layer.provide(Layer.succeed(HttpMiddleware.TracerDisabledWhen)(() => true)),
    Layer.catchTag("ServeError", (error) =>
      Layer.effect(
        WorkerEndpoint,
        Effect.fail(new EndpointUnavailable({ host: options.host, port: options.port, reason: describe(error.cause) }))
      ))
  )
}
