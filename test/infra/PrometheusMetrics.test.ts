/**
 * Prometheus export of Effect's metrics: the text exposition format 0.0.4
 * rendered from real metric updates (exact lines), name and label hygiene,
 * and the `/metrics` HTTP endpoint's life: port 0, content type, 404/405,
 * a port already taken, closed with its scope.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Logger, Metric, Option, References, Scope } from "effect"
import * as net from "node:net"
import * as PrometheusMetrics from "../../src/infra/PrometheusMetrics.ts"
import { MetricsServer } from "../../src/infra/PrometheusMetrics.ts"

/** Runs `effect` against a registry of its own, so other tests' metrics do not show. */
const isolated = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

const lines = (text: string): ReadonlyArray<string> => text.split("\n")

/** What a fresh TCP connection to the port meets: `connected`, or the error code (`ECONNREFUSED`, …). */
const connect = (port: number) =>
  Effect.callback<string>((resume) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed("connected"))
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code ?? error.message)))
  })

const get = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    return { status: response.status, contentType: response.headers.get("content-type"), body: await response.text() }
  })

describe("PrometheusMetrics.render", () => {
  it.effect("a counter, a gauge with attributes and a histogram, line by line", () =>
    isolated(Effect.gen(function*() {
      const applied = Metric.counter("dynastate_test_events_applied", {
        description: "events applied",
        incremental: true
      })
      const lag = Metric.gauge("dynastate_test_lag_ms", {
        description: "age of the last record\nper shard, in ms \\ms"
      })
      const latency = Metric.histogram("dynastate_test_latency_ms", { boundaries: [10, 100] })
      yield* Metric.update(applied, 2)
      yield* Metric.update(applied, 1)
      yield* Metric.update(applied, -5) // an incremental counter ignores decrements
      yield* Metric.update(Metric.withAttributes(lag, { shard: "shardId-0001" }), 1200)
      yield* Metric.update(Metric.withAttributes(lag, { shard: "odd \"shard\"\\x\ny" }), 250)
      for (const value of [5, 50, 500, 100]) yield* Metric.update(latency, value)

      expect(lines(yield* PrometheusMetrics.format())).toEqual([
        "# HELP dynastate_test_events_applied events applied",
        "# TYPE dynastate_test_events_applied counter",
        "dynastate_test_events_applied 3",
        "# HELP dynastate_test_lag_ms age of the last record\\nper shard, in ms \\\\ms",
        "# TYPE dynastate_test_lag_ms gauge",
        "dynastate_test_lag_ms{shard=\"odd \\\"shard\\\"\\\\x\\ny\"} 250",
        "dynastate_test_lag_ms{shard=\"shardId-0001\"} 1200",
        "# TYPE dynastate_test_latency_ms histogram",
        "dynastate_test_latency_ms_bucket{le=\"10\"} 1",
        "dynastate_test_latency_ms_bucket{le=\"100\"} 3",
        "dynastate_test_latency_ms_bucket{le=\"+Inf\"} 4",
        "dynastate_test_latency_ms_sum 655",
        "dynastate_test_latency_ms_count 4",
        ""
      ])
    })))

  it.effect("summaries, frequencies, counters that can go down, bigints, NaN and infinities", () =>
    isolated(Effect.gen(function*() {
      const summary = Metric.summary("rpc_ms", { maxAge: "1 minute", maxSize: 10, quantiles: [0.9, 0.5] })
      const idle = Metric.summary("idle_ms", { maxAge: "1 minute", maxSize: 10, quantiles: [0.5] })
      const statuses = Metric.frequency("http_status", { attributes: { route: "/a" } })
      const balance = Metric.counter("balance") // not incremental: it may go down, so it is no Prometheus counter
      const bytes = Metric.counter("bytes", { bigint: true, incremental: true })
      const ratio = Metric.gauge("ratio")
      for (const value of [3, 1, 2]) yield* Metric.update(summary, value)
      yield* Metric.value(idle)
      for (const status of ["200", "404", "200"]) yield* Metric.update(statuses, status)
      yield* Metric.update(balance, 5)
      yield* Metric.update(balance, -7)
      yield* Metric.update(bytes, 2n ** 64n)
      yield* Metric.update(Metric.withAttributes(ratio, { kind: "nan" }), Number.NaN)
      yield* Metric.update(Metric.withAttributes(ratio, { kind: "up" }), Number.POSITIVE_INFINITY)
      yield* Metric.update(Metric.withAttributes(ratio, { kind: "down" }), Number.NEGATIVE_INFINITY)
      yield* Metric.update(Metric.withAttributes(ratio, { kind: "small" }), 1.5e-7)

      expect(lines(yield* PrometheusMetrics.format())).toEqual([
        "# TYPE balance gauge",
        "balance -2",
        "# TYPE bytes counter",
        "bytes 18446744073709551616",
        "# TYPE http_status counter",
        "http_status{route=\"/a\",key=\"200\"} 2",
        "http_status{route=\"/a\",key=\"404\"} 1",
        "# TYPE idle_ms summary",
        "idle_ms{quantile=\"0.5\"} NaN",
        "idle_ms_sum 0",
        "idle_ms_count 0",
        "# TYPE ratio gauge",
        "ratio{kind=\"down\"} -Inf",
        "ratio{kind=\"nan\"} NaN",
        "ratio{kind=\"small\"} 1.5e-7",
        "ratio{kind=\"up\"} +Inf",
        "# TYPE rpc_ms summary",
        "rpc_ms{quantile=\"0.5\"} 2",
        "rpc_ms{quantile=\"0.9\"} 3",
        "rpc_ms_sum 6",
        "rpc_ms_count 3",
        ""
      ])
    })))

  it.effect("names and label names are sanitised; an attribute named le, quantile or key is exported_…", () =>
    isolated(Effect.gen(function*() {
      yield* Metric.update(
        Metric.gauge("http.requests-in flight", { attributes: { "db.name": "main", "__meta": "x", "1st": "y" } }),
        4
      )
      yield* Metric.update(Metric.gauge("5xx_rate"), 1)
      yield* Metric.update(Metric.gauge("ünïcode:ok"), 2)
      yield* Metric.update(
        Metric.histogram("sizes", { boundaries: [1], attributes: { le: "attribute", "le.x": "kept" } }),
        0.5
      )
      yield* Metric.update(Metric.withAttributes(Metric.gauge("dups"), { "a.b": "first", "a-b": "second" }), 1)
      yield* Metric.update(Metric.frequency("words", { attributes: { key: "attribute" } }), "word")

      expect(lines(yield* PrometheusMetrics.format())).toEqual([
        "# TYPE _5xx_rate gauge",
        "_5xx_rate 1",
        "# TYPE _n_code:ok gauge",
        "_n_code:ok 2",
        "# TYPE dups gauge",
        "dups{a_b=\"second\"} 1",
        "# TYPE http_requests_in_flight gauge",
        "http_requests_in_flight{_1st=\"y\",_meta=\"x\",db_name=\"main\"} 4",
        "# TYPE sizes histogram",
        "sizes_bucket{exported_le=\"attribute\",le_x=\"kept\",le=\"1\"} 1",
        "sizes_bucket{exported_le=\"attribute\",le_x=\"kept\",le=\"+Inf\"} 1",
        "sizes_sum{exported_le=\"attribute\",le_x=\"kept\"} 0.5",
        "sizes_count{exported_le=\"attribute\",le_x=\"kept\"} 1",
        "# TYPE words counter",
        "words{exported_key=\"attribute\",key=\"word\"} 1",
        ""
      ])
    })))

  it.effect("two metrics of different types sanitised to one name: the second is left out, with a comment", () =>
    isolated(Effect.gen(function*() {
      yield* Metric.update(Metric.gauge("queue.size", { description: "items queued" }), 3)
      yield* Metric.update(Metric.counter("queue_size", { incremental: true }), 1)
      const text = yield* PrometheusMetrics.format()
      expect(lines(text)).toEqual([
        "# HELP queue_size items queued",
        "# TYPE queue_size gauge",
        "queue_size 3",
        "# left out queue_size (counter): queue_size is already a gauge",
        ""
      ])
      expect(text.match(/^# TYPE /gm)).toHaveLength(1)
    })))

  it.effect("an empty registry renders as the empty text", () =>
    isolated(Effect.map(PrometheusMetrics.format(), (text) => expect(text).toBe(""))))

  it("escaping and values on their own", () => {
    expect(PrometheusMetrics.escapeLabelValue("a\\b\"c\nd")).toBe("a\\\\b\\\"c\\nd")
    expect(PrometheusMetrics.escapeHelp("a\\b\"c\nd")).toBe("a\\\\b\"c\\nd")
    expect(PrometheusMetrics.sanitizeMetricName("")).toBe("_")
    expect(PrometheusMetrics.sanitizeMetricName("a:b_c9")).toBe("a:b_c9")
    expect(PrometheusMetrics.sanitizeLabelName("a:b")).toBe("a_b")
    expect(PrometheusMetrics.sanitizeLabelName("___x")).toBe("_x")
    expect([0, -0, 42, -1.25, 1e21].map(PrometheusMetrics.formatValue)).toEqual(["0", "0", "42", "-1.25", "1e+21"])
  })
})

describe("MetricsServer", () => {
  const requests = Metric.counter("dynastate_test_scrapes", { description: "scrapes", incremental: true })

  it.effect("serves GET /metrics on a free port, 404 elsewhere, 405 for other methods; closed with its scope", () =>
    isolated(Effect.gen(function*() {
      yield* Metric.update(requests, 7)
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(MetricsServer.layer({ host: "127.0.0.1", port: 0 }), scope)
      const { port, url } = Context.get(context, MetricsServer)
      expect(port).toBeGreaterThan(0)
      expect(url).toBe(`http://127.0.0.1:${port}/metrics`)

      const scrape = yield* get(url)
      expect(scrape.status).toBe(200)
      expect(scrape.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
      expect(lines(scrape.body)).toContain("dynastate_test_scrapes 7")
      expect(lines(scrape.body)).toContain("# TYPE dynastate_test_scrapes counter")

      // The registry is read on every scrape, not once.
      yield* Metric.update(requests, 1)
      expect(lines((yield* get(`${url}?from=test`)).body)).toContain("dynastate_test_scrapes 8")

      const head = yield* get(url, { method: "HEAD" })
      expect([head.status, head.body]).toEqual([200, ""])
      const other = yield* get(`http://127.0.0.1:${port}/`)
      expect([other.status, other.body]).toEqual([404, "not found\n"])
      expect((yield* get(`http://127.0.0.1:${port}/metrics/x`)).status).toBe(404)
      const post = yield* get(url, { method: "POST", body: "x" })
      expect(post.status).toBe(405)

      expect(yield* connect(port)).toBe("connected")
      yield* Scope.close(scope, Exit.void)
      expect(yield* connect(port)).toBe("ECONNREFUSED")
      // fetch's pooled keep-alive connection was closed too: no scrape gets an answer any more.
      expect(yield* Effect.promise(() => fetch(url).then((response) => response.status, () => "failed"))).toBe("failed")
    })))

  it.effect("a port already taken fails the layer with MetricsServerError naming it", () =>
    Effect.gen(function*() {
      const first = yield* Layer.build(MetricsServer.layer({ host: "127.0.0.1", port: 0 }))
      const { port } = Context.get(first, MetricsServer)
      const error = yield* Effect.flip(Layer.build(MetricsServer.layer({ host: "127.0.0.1", port })))
      expect(error._tag).toBe("MetricsServerError")
      expect(error.port).toBe(port)
      expect(error.reason).toContain("EADDRINUSE")
      expect(error.message).toContain(`127.0.0.1:${port}`)
    }))

  it.effect("without a registry of its own it serves Effect's default one, which the rest of the process updates", () =>
    Effect.gen(function*() {
      const name = `dynastate_test_default_registry_${process.pid}`
      const { url } = Context.get(
        yield* Layer.build(MetricsServer.layer({ host: "127.0.0.1", port: 0 })),
        MetricsServer
      )
      // Another runtime altogether, as the worker's fibers would be.
      Effect.runSync(Metric.update(Metric.gauge(name), 42))
      expect(lines((yield* get(url)).body)).toContain(`${name} 42`)
    }))
})

describe("PrometheusMetrics.layerFromConfig", () => {
  const logged = <E>(layer: Layer.Layer<never, E>) =>
    Effect.gen(function*() {
      const messages: Array<string> = []
      const logger = Logger.make(({ message }) => {
        messages.push((message as ReadonlyArray<unknown>).map(String).join(" "))
      })
      yield* Layer.build(layer).pipe(
        Effect.provide(Layer.mergeAll(Logger.layer([logger]), Layer.succeed(References.MinimumLogLevel, "All")))
      )
      return messages
    })

  it.effect("no metrics_port: no endpoint and nothing logged", () =>
    Effect.map(
      logged(PrometheusMetrics.layerFromConfig({ metricsPort: Option.none(), metricsHost: "127.0.0.1" })),
      (messages) => expect(messages).toEqual([])
    ))

  it.effect("a metrics_port: the endpoint runs and its address is logged", () =>
    isolated(Effect.gen(function*() {
      yield* Metric.update(Metric.gauge("dynastate_test_from_config"), 1)
      const messages = yield* logged(
        PrometheusMetrics.layerFromConfig({ metricsPort: Option.some(0), metricsHost: "127.0.0.1" })
      )
      expect(messages).toHaveLength(1)
      const url = /serving metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)$/.exec(messages[0]!)?.[1]
      expect(url).toBeDefined()
      const scrape = yield* get(url!)
      expect(scrape.status).toBe(200)
      expect(lines(scrape.body)).toContain("dynastate_test_from_config 1")
    })))
})
