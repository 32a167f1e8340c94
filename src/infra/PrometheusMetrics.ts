/**
 * Effect's metrics for Prometheus: a snapshot of the metric registry rendered
 * in the text exposition format 0.0.4, and a small `node:http` server that
 * answers `GET /metrics` with it while its layer lives.
 *
 * - Names are sanitised to `[a-zA-Z_:][a-zA-Z0-9_:]*`, attribute names to
 *   `[a-zA-Z_][a-zA-Z0-9_]*`; label values and help text are escaped. An
 *   attribute named `le` (histograms), `quantile` (summaries) or `key`
 *   (frequencies) is exported as `exported_<name>`.
 * - The series of one name form one family under one `# HELP` / `# TYPE`;
 *   families and series come out sorted, so a scrape is stable.
 * - Counters declared `incremental` (they only go up) are Prometheus counters;
 *   other counters accept decrements, which Prometheus would read as resets,
 *   so they are exposed as gauges. Frequencies are counters with a `key` label,
 *   histograms get cumulative `_bucket{le}` series plus `_sum` and `_count`,
 *   summaries `{quantile}` series (`NaN` before any observation).
 * - A series whose name is already a family of another type (two metrics
 *   sanitised to the same name) is left out, with a comment saying so.
 */
import { Context, Effect, Layer, Metric, Option, Schema } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** The content type of the text exposition format. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/** The path the server answers on. */
export const metricsPath = "/metrics"

type PrometheusType = "counter" | "gauge" | "histogram" | "summary"

interface Family {
  readonly type: PrometheusType
  readonly help: string | undefined
  readonly samples: Array<{ readonly labels: string; readonly lines: ReadonlyArray<string> }>
}

/** A metric name Prometheus accepts: invalid characters become `_`, and it never starts with a digit. */
export const sanitizeMetricName = (name: string): string => {
  const sanitized = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return sanitized === "" || /^[0-9]/.test(sanitized) ? `_${sanitized}` : sanitized
}

/** A label name Prometheus accepts; the `__` prefix, reserved for Prometheus itself, is cut to one `_`. */
export const sanitizeLabelName = (name: string): string => {
  const sanitized = name.replace(/[^a-zA-Z0-9_]/g, "_").replace(/^__+/, "_")
  return sanitized === "" || /^[0-9]/.test(sanitized) ? `_${sanitized}` : sanitized
}

/** A label value inside double quotes: backslash, double quote and line feed escaped. */
export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

/** Help text: backslash and line feed escaped. */
export const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/** A sample value: integers and floats as JavaScript writes them, and `NaN`, `+Inf`, `-Inf`. */
export const formatValue = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

/**
 * The label set `{a="x",b="y"}` of a series: its attributes sorted by name,
 * then `extra` (`le`, `quantile`, `key`). An attribute named like a label the
 * family reserves (`reserved`) is renamed `exported_<name>`, as Prometheus
 * does with clashing target labels; of attributes sanitised to the same name,
 * the first in order is kept.
 */
const formatLabels = (
  attributes: Metric.Metric.AttributeSet | undefined,
  reserved: ReadonlyArray<string>,
  extra: ReadonlyArray<readonly [string, string]> = []
): string => {
  const labels = new Map<string, string>()
  const entries = Object.entries(attributes ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  for (const [key, value] of entries) {
    const sanitized = sanitizeLabelName(key)
    const name = reserved.includes(sanitized) ? `exported_${sanitized}` : sanitized
    if (!labels.has(name)) labels.set(name, String(value))
  }
  for (const [name, value] of extra) labels.set(name, value)
  if (labels.size === 0) return ""
  return `{${Array.from(labels, ([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`
}

/** The label names a series of this type adds itself. */
const reservedLabels = (type: Metric.Metric.Type): ReadonlyArray<string> =>
  type === "Histogram" ? ["le"] : type === "Summary" ? ["quantile"] : type === "Frequency" ? ["key"] : []

const typeOf = (snapshot: Metric.Metric.Snapshot): PrometheusType => {
  switch (snapshot.type) {
    case "Counter":
      return snapshot.state.incremental ? "counter" : "gauge"
    case "Gauge":
      return "gauge"
    case "Frequency":
      return "counter"
    case "Histogram":
      return "histogram"
    case "Summary":
      return "summary"
  }
}

/** The sample lines of one series. */
const sampleLines = (name: string, snapshot: Metric.Metric.Snapshot): ReadonlyArray<string> => {
  const reserved = reservedLabels(snapshot.type)
  const labels = formatLabels(snapshot.attributes, reserved)
  switch (snapshot.type) {
    case "Counter":
      return [`${name}${labels} ${formatValue(snapshot.state.count)}`]
    case "Gauge":
      return [`${name}${labels} ${formatValue(snapshot.state.value)}`]
    case "Frequency":
      return Array.from(snapshot.state.occurrences)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([key, count]) =>
          `${name}${formatLabels(snapshot.attributes, reserved, [["key", key]])} ${formatValue(count)}`
        )
    case "Histogram": {
      const { buckets, count, sum } = snapshot.state
      return [
        ...buckets
          .filter(([boundary]) => Number.isFinite(boundary))
          .map(([boundary, cumulative]) =>
            `${name}_bucket${formatLabels(snapshot.attributes, reserved, [["le", formatValue(boundary)]])} ${
              formatValue(cumulative)
            }`
          ),
        `${name}_bucket${formatLabels(snapshot.attributes, reserved, [["le", "+Inf"]])} ${formatValue(count)}`,
        `${name}_sum${labels} ${formatValue(sum)}`,
        `${name}_count${labels} ${formatValue(count)}`
      ]
    }
    case "Summary": {
      const { count, quantiles, sum } = snapshot.state
      return [
        ...quantiles.map(([quantile, value]) =>
          `${name}${formatLabels(snapshot.attributes, reserved, [["quantile", formatValue(quantile)]])} ${
            formatValue(value ?? Number.NaN)
          }`
        ),
        `${name}_sum${labels} ${formatValue(sum)}`,
        `${name}_count${labels} ${formatValue(count)}`
      ]
    }
  }
}

/**
 * Renders metric snapshots (from `Metric.snapshot`) in the Prometheus text
 * exposition format 0.0.4: one `# HELP` (when the metric has a description)
 * and one `# TYPE` line per family, then its samples; a final line feed.
 * No metrics render as the empty text.
 */
export const render = (snapshots: ReadonlyArray<Metric.Metric.Snapshot>): string => {
  const families = new Map<string, Family>()
  const skipped: Array<string> = []
  for (const snapshot of snapshots) {
    const name = sanitizeMetricName(snapshot.id)
    const type = typeOf(snapshot)
    let family = families.get(name)
    if (family === undefined) {
      family = { type, help: snapshot.description, samples: [] }
      families.set(name, family)
    } else if (family.type !== type) {
      skipped.push(`# left out ${escapeHelp(snapshot.id)} (${type}): ${name} is already a ${family.type}`)
      continue
    }
    family.samples.push({
      labels: formatLabels(snapshot.attributes, reservedLabels(snapshot.type)),
      lines: sampleLines(name, snapshot)
    })
  }
  const lines: Array<string> = []
  for (const name of Array.from(families.keys()).sort()) {
    const family = families.get(name)!
    if (family.help !== undefined && family.help !== "") lines.push(`# HELP ${name} ${escapeHelp(family.help)}`)
    lines.push(`# TYPE ${name} ${family.type}`)
    const samples = [...family.samples].sort((a, b) => (a.labels < b.labels ? -1 : a.labels > b.labels ? 1 : 0))
    for (const sample of samples) lines.push(...sample.lines)
  }
  lines.push(...skipped)
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`
}

/** The metrics of the current context's registry (`Metric.MetricRegistry`), rendered by {@link render}. */
export const format = Effect.fn("PrometheusMetrics.format")(function*() {
  return render(yield* Metric.snapshot)
})

/** The metrics endpoint could not listen (port taken, address not local, no permission). */
export class MetricsServerError extends Schema.TaggedError<MetricsServerError>()("MetricsServerError", {
  host: Schema.String,
  port: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `cannot serve metrics on ${this.host}:${this.port}: ${this.reason}`
  }
}

/** Where the metrics endpoint listens. */
export interface MetricsServerOptions {
  /** An address or host name; `0.0.0.0` or `::` for every interface. */
  readonly host: string
  /** 0 picks a free port (read it from the service). */
  readonly port: number
}

const describeError = (error: unknown): string => {
  const code = (error as { code?: unknown })?.code
  const message = String((error as { message?: unknown })?.message ?? error)
  return typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message
}

const send = (response: http.ServerResponse, status: number, headers: http.OutgoingHttpHeaders, body: string): void => {
  response.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) })
  response.end(body)
}

/** Answers one request: the metrics on `GET /metrics` (and `HEAD`), 405 for other methods there, 404 elsewhere. */
const handle =
  (context: Context.Context<never>) => (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const path = new URL(request.url ?? "/", "http://metrics.invalid").pathname
    if (path !== metricsPath) {
      send(response, 404, { "content-type": "text/plain; charset=utf-8" }, "not found\n")
    } else if (request.method !== "GET" && request.method !== "HEAD") {
      send(response, 405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" }, "method not allowed\n")
    } else {
      const exit = Effect.runSyncExitWith(context)(format())
      if (exit._tag === "Success") {
        send(response, 200, { "content-type": contentType }, exit.value)
      } else {
        Effect.runForkWith(context)(Effect.logError("rendering the metrics failed", exit.cause))
        send(response, 500, { "content-type": "text/plain; charset=utf-8" }, "cannot render the metrics\n")
      }
    }
  }

const listen = (options: MetricsServerOptions, context: Context.Context<never>) =>
  Effect.callback<http.Server, MetricsServerError>((resume) => {
    const server = http.createServer(handle(context))
    const failed = (error: unknown) =>
      resume(
        Effect.fail(new MetricsServerError({ host: options.host, port: options.port, reason: describeError(error) }))
      )
    server.once("error", failed)
    server.listen({ host: options.host, port: options.port }, () => {
      server.off("error", failed)
      server.on(
        "error",
        (error) => Effect.runForkWith(context)(Effect.logWarning(`metrics server: ${describeError(error)}`))
      )
      resume(Effect.succeed(server))
    })
    // Interrupted while binding: let go of the socket.
    return Effect.sync(() => server.close())
  })

/** Stops accepting connections, ends the open ones (keep-alive scrapers), and waits until the socket is closed. */
const close = (server: http.Server) =>
  Effect.callback<void>((resume) => {
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })

const hostInUrl = (address: string): string => (address.includes(":") ? `[${address}]` : address)

/** The metrics endpoint of a running server. */
export class MetricsServer extends Context.Service<MetricsServer, {
  /** The address it listens on, as the system reports it. */
  readonly host: string
  /** The bound port (the one picked by the system when 0 was asked for). */
  readonly port: number
  /** `http://host:port/metrics`. */
  readonly url: string
}>()("dynastate/MetricsServer") {
  /**
   * Serves `GET /metrics` while the layer lives, from the metric registry of
   * the context the layer is built in (Effect's default registry unless a
   * `Metric.MetricRegistry` is provided); the server is closed when the
   * layer's scope closes.
   */
  static readonly layer = (options: MetricsServerOptions): Layer.Layer<MetricsServer, MetricsServerError> =>
    Layer.effect(MetricsServer, make(options))
}

const make = Effect.fn("MetricsServer.make")(function*(options: MetricsServerOptions) {
  const context = yield* Effect.context<never>()
  const server = yield* Effect.acquireRelease(listen(options, context), close)
  const address = server.address() as AddressInfo
  const url = `http://${hostInUrl(address.address)}:${address.port}${metricsPath}`
  yield* Effect.logInfo(`serving metrics at ${url}`)
  return MetricsServer.of({ host: address.address, port: address.port, url })
})

/**
 * The metrics endpoint a store configuration asks for: a {@link MetricsServer}
 * on `metricsHost:metricsPort` when `metricsPort` is set, nothing otherwise.
 */
export const layerFromConfig = (config: {
  readonly metricsPort: Option.Option<number>
  readonly metricsHost: string
}): Layer.Layer<never, MetricsServerError> =>
  Option.match(config.metricsPort, {
    onNone: () => Layer.empty,
    onSome: (port) => Layer.effectDiscard(make({ host: config.metricsHost, port }))
  })
