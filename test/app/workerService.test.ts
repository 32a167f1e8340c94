/**
 * The worker as a service, against DynamoDB Local: its HTTP endpoint answers `/healthz` and `/readyz` (ready once
 * the reader reached the stream's tip; not ready while a batch lags beyond `ready_max_lag` or while the lease
 * table cannot be reached), and `/metrics` shows every dynastate metric from the start, zero-valued, even on a
 * worker holding none of the shards. With `otlp_endpoint`, its traces and metrics reach an OTLP collector.
 */
import { DeleteTableCommand } from "@aws-sdk/client-dynamodb"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Metric, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import * as WorkerHttp from "../../src/programs/app/WorkerHttp.ts"
import * as WorkerLive from "../../src/programs/app/WorkerLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import { defaultWorkerOptions } from "../../src/programs/worker/ProjectionWorker.ts"
import { WorkerHealth } from "../../src/programs/worker/WorkerHealth.ts"
import { freePort } from "../support/FreePort.ts"
import { collector, spanNames } from "../support/OtlpCollector.ts"
import { endpoint, freshTableName, makeClient } from "../support/TestStore.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-worker-service-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
const keyFile = path.join(dir, "keyring.key")
const bytes = (value: string) => new TextEncoder().encode(value)

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, contentType: response.headers.get("content-type"), body: await response.text() }
  })

/** Asks `url` until `accept` says yes (20 s at most), returning the last answer. */
const until = (url: string, accept: (answer: { status: number; body: string }) => boolean) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 20_000
    while (true) {
      const answer = yield* get(url)
      if (accept(answer) || Date.now() > deadline) return answer
      yield* Effect.sleep("200 millis")
    }
  })

/** A configuration for a fresh table with the worker's endpoint on a free port. */
const configFor = (table: string, extra: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const port = yield* freePort
    const config = yield* StoreConfig.load({
      env: {
        DYNASTATE_ENDPOINT: endpoint(),
        DYNASTATE_TABLE_NAME: table,
        DYNASTATE_KEYRING_FILE: keyFile,
        DYNASTATE_METRICS_PORT: String(port),
        ...extra
      }
    })
    return { config, url: `http://127.0.0.1:${port}` }
  })

/** Builds `layer` in a scope of its own with a metric registry of its own (as a process of its own would have). */
const start = <A, E>(layer: Layer.Layer<A, E>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(layer, scope).pipe(
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
    return { context, stop: Scope.close(scope, Exit.void) }
  })

/** Every metric dynastate records, which a scrape must show from the start. */
const metricNames = [
  "dynastate_worker_events_applied",
  "dynastate_worker_lag_ms",
  "dynastate_worker_max_lag_ms",
  "dynastate_worker_quarantined_keys",
  "dynastate_worker_shards_held",
  "dynastate_worker_fair_share",
  "dynastate_worker_live_workers",
  "dynastate_worker_ready",
  "dynastate_store_expiry_record_failures"
]

/** The value of an unlabelled series in a scrape. */
const sample = (scrape: string, name: string): number | undefined => {
  const line = scrape.split("\n").find((line) => line.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

describe("the worker's HTTP endpoint", () => {
  it.live(
    "healthz, readyz once at the tip, and every metric at zero on a worker holding none of the shards",
    () =>
      Effect.gen(function*() {
        const table = freshTableName("worker-service")
        const first = yield* configFor(table)
        yield* start(WorkerLive.layer(first.config))
        expect(yield* get(`${first.url}/healthz`)).toMatchObject({ status: 200, body: "ok\n" })
        // Ready once it holds the shard and its reader reached the newest record (until then: 503, "not read yet").
        const ready = yield* until(
          `${first.url}/readyz`,
          ({ body, status }) => status === 200 && JSON.parse(body).shardsHeld === 1
        )
        expect(ready.status).toBe(200)
        expect(JSON.parse(ready.body)).toMatchObject({ ready: true, reasons: [], shardsHeld: 1 })
        expect(JSON.parse(ready.body).shards).toEqual([{ shardId: expect.any(String), lagMillis: 0 }])

        // A second worker: the first holds the only shard, so this one holds none and stands by, ready.
        const second = yield* configFor(table)
        yield* start(WorkerLive.layer(second.config))
        const scrape = yield* get(`${second.url}/metrics`)
        expect(scrape.status).toBe(200)
        expect(scrape.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
        for (const name of metricNames) expect(scrape.body).toContain(`# TYPE ${name} `)
        expect(sample(scrape.body, "dynastate_worker_events_applied")).toBe(0)
        expect(sample(scrape.body, "dynastate_worker_shards_held")).toBe(0)
        expect(sample(scrape.body, "dynastate_worker_quarantined_keys")).toBe(0)
        expect(sample(scrape.body, "dynastate_store_expiry_record_failures")).toBe(0)
        expect(sample(scrape.body, "dynastate_worker_max_lag_ms")).toBe(0)
        const standby = yield* until(`${second.url}/readyz`, ({ body }) => JSON.parse(body).liveWorkers === 2)
        expect(standby.status).toBe(200)
        expect(JSON.parse(standby.body)).toMatchObject({ ready: true, shardsHeld: 0, fairShare: 1, liveWorkers: 2 })
        expect(sample((yield* get(`${second.url}/metrics`)).body, "dynastate_worker_ready")).toBe(1)
        expect((yield* get(`${second.url}/nothing`)).status).toBe(404)
      }),
    60_000
  )

  it.live(
    "readyz is 503 with the reason while a batch lags beyond ready_max_lag, and 200 again after",
    () =>
      Effect.gen(function*() {
        const table = freshTableName("worker-lag")
        const { config, url } = yield* configFor(table, { DYNASTATE_READY_MAX_LAG: "1s" })
        const slow = Projection.make({
          name: "slow",
          prefixes: ["/slow/"],
          apply: () => Effect.sleep("5 seconds")
        })
        const { context } = yield* start(WorkerLive.layer(config, Effect.succeed([slow])))
        yield* until(`${url}/readyz`, ({ body, status }) => status === 200 && JSON.parse(body).shardsHeld === 1)
        yield* Context.get(context, Store).put({ key: "/slow/a", value: bytes("v") })
        const lagging = yield* until(`${url}/readyz`, ({ status }) => status === 503)
        expect(lagging.status).toBe(503)
        const body = JSON.parse(lagging.body)
        expect(body.ready).toBe(false)
        expect(body.reasons).toEqual([expect.stringMatching(/^shard .+: .+ behind, more than ready_max_lag 1s$/)])
        const scrape = yield* get(`${url}/metrics`)
        expect(sample(scrape.body, "dynastate_worker_ready")).toBe(0)
        expect(sample(scrape.body, "dynastate_worker_max_lag_ms")).toBeGreaterThan(1_000)
        const caughtUp = yield* until(`${url}/readyz`, ({ status }) => status === 200)
        expect(JSON.parse(caughtUp.body)).toMatchObject({ ready: true, reasons: [] })
      }),
    60_000
  )

  it.live(
    "readyz is 503 when the lease table cannot be reached, so leases cannot be held",
    () =>
      Effect.gen(function*() {
        const table = freshTableName("worker-leases")
        const { config } = yield* configFor(table)
        const options = { ...defaultWorkerOptions(table), leaseMillis: 1_500 }
        const layer = WorkerHttp.layer({ host: "127.0.0.1", port: 0 }).pipe(
          Layer.provideMerge(WorkerHealth.layer({ readyMaxLagMillis: 30_000, leaseMillis: 1_500, sampleMillis: 200 })),
          Layer.provideMerge(WorkerLive.workerLayer(options, WorkerLive.compactionOptions(config))),
          Layer.provide(StoreLive.layer(config))
        )
        const { context } = yield* start(layer)
        const url = Context.get(context, WorkerHttp.WorkerEndpoint).url
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
        expect((yield* until(`${url}/readyz`, ({ status }) => status === 200)).status).toBe(200)
        const client = makeClient()
        yield* Effect.promise(() => client.send(new DeleteTableCommand({ TableName: options.leases.table })))
        client.destroy()
        const refused = yield* until(`${url}/readyz`, ({ status }) => status === 503)
        expect(refused.status).toBe(503)
        expect(JSON.parse(refused.body).reasons).toEqual([
          expect.stringMatching(/^leases cannot be held: the lease heartbeat has failed for .+ \(\w+\)$/)
        ])
        // Alive all the same: the process runs, only DynamoDB is out of reach.
        expect((yield* get(`${url}/healthz`)).status).toBe(200)
      }),
    60_000
  )

  it.live("a port already taken fails the layer with EndpointUnavailable naming it", () =>
    Effect.gen(function*() {
      const health = Layer.succeed(
        WorkerHealth,
        WorkerHealth.of({ current: Effect.die("unused"), alive: Effect.succeed({ alive: true, sinceMillis: 0 }) })
      )
      const { context } = yield* start(WorkerHttp.layer({ host: "127.0.0.1", port: 0 }).pipe(Layer.provide(health)))
      const port = Number(new URL(Context.get(context, WorkerHttp.WorkerEndpoint).url).port)
      const error = yield* Effect.flip(
        Layer.build(WorkerHttp.layer({ host: "127.0.0.1", port }).pipe(Layer.provide(health)))
      )
      expect(error._tag).toBe("EndpointUnavailable")
      expect(error.message).toContain(`127.0.0.1:${port}`)
      expect(error.reason).toContain("EADDRINUSE")
    }))

  it.live("with otlp_endpoint, the worker's spans and metrics reach an OTLP collector", () =>
    Effect.gen(function*() {
      const otel = yield* collector
      const table = freshTableName("worker-otlp")
      const { config, url } = yield* configFor(table, { DYNASTATE_OTLP_ENDPOINT: otel.url })
      const { context, stop } = yield* start(WorkerLive.layer(config))
      yield* until(`${url}/readyz`, ({ body, status }) => status === 200 && JSON.parse(body).shardsHeld === 1)
      // Through the layer's context, so with its tracer, as code of the application's would run.
      yield* Store.use((store) => store.put({ key: "/otlp/a", value: bytes("v") })).pipe(Effect.provideContext(context))
      // Stopping flushes what the exporters hold.
      yield* stop
      const spans = spanNames(otel.received)
      expect(spans).toContain("EventTable.append")
      // The probes of /readyz above made no spans.
      expect(spans).not.toContain("GET")
      const metrics = otel.received.filter((request) => request.path === "/v1/metrics").map((request) => request.body)
      expect(metrics.length).toBeGreaterThan(0)
      expect(metrics.join("\n")).toContain("dynastate_worker_ready")
      expect(otel.received.every((request) => request.body.includes("dynastate-worker"))).toBe(true)
    }), 90_000)
})
