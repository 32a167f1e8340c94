/**
 * The worker's service parts that need no DynamoDB: the status line logged only when something changed,
 * OpenTelemetry traces and metrics exported over OTLP/HTTP to a small local collector, and the shutdown deadline
 * (a stop that finishes in time exits nothing; one that hangs past the deadline calls the exit).
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Logger, Metric, Option, References, Scope } from "effect"
import * as WorkerLive from "../../src/programs/app/WorkerLive.ts"
import type { WorkerStatus } from "../../src/programs/worker/ProjectionWorker.ts"
import { WorkerHealth } from "../../src/programs/worker/WorkerHealth.ts"
import type { Health } from "../../src/programs/worker/WorkerHealth.ts"
import { eventually } from "../streams/Harness.ts"
import { collector, spanNames } from "../support/OtlpCollector.ts"

const status = (change: Partial<WorkerStatus> = {}): WorkerStatus => ({
  owner: "worker-0123456789abcdef",
  shards: [{ shardId: "shardId-1", lagMillis: 0, records: 3 }],
  eventsApplied: 3,
  eventsPerSecond: 0,
  quarantined: [],
  tampering: [],
  ownedShards: 1,
  fairShare: 1,
  liveWorkers: 1,
  held: [{ shardId: "shardId-1", lagMillis: 0 }],
  heartbeat: { lastSuccessAt: 0, failure: undefined },
  ...change
})

/** Captures info lines. */
const capture = () => {
  const lines: Array<string> = []
  const layer = Layer.mergeAll(
    Logger.layer([Logger.make(({ message }) => {
      lines.push((message as ReadonlyArray<unknown>).map(String).join(" "))
    })]),
    Layer.succeed(References.MinimumLogLevel, "Info")
  )
  return { lines, layer }
}

describe("WorkerLive.statusLine", () => {
  it.live("logs a line at start and then only when something changed", () =>
    Effect.gen(function*() {
      let current: Health = { status: status(), readiness: { ready: true, reasons: [] }, sampledAt: Date.now() }
      const health = Layer.succeed(
        WorkerHealth,
        WorkerHealth.of({
          current: Effect.sync(() => current),
          alive: Effect.succeed({ alive: true, sinceMillis: 0 })
        })
      )
      const { layer: logging, lines } = capture()
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(WorkerLive.statusLine("20 millis").pipe(Layer.provide(health)), scope).pipe(
        Effect.provide(logging)
      )
      // The first tick comes after 20 ms; a loaded machine may hold a timer back much longer.
      expect(yield* eventually(() => lines.length > 0, 5_000)).toBe(true)
      expect(lines).toEqual(["worker 01234567: 1/1 shards (1 workers), lag 0, 3 events (0.0/s), 0 quarantined, ready"])
      // Lag and rate move all the time; they alone are no change worth a line.
      current = { ...current, status: status({ held: [{ shardId: "shardId-1", lagMillis: 700 }] }) }
      yield* Effect.sleep("100 millis")
      expect(lines).toHaveLength(1)
      current = {
        status: status({ ownedShards: 0, fairShare: 1, liveWorkers: 2, held: [] }),
        readiness: { ready: false, reasons: ["leases cannot be held: the lease heartbeat has failed for 20s (X)"] },
        sampledAt: Date.now()
      }
      expect(yield* eventually(() => lines.length > 1, 5_000)).toBe(true)
      expect(lines).toHaveLength(2)
      expect(lines[1]).toBe(
        "worker 01234567: 0/1 shards (2 workers), lag -, 3 events (0.0/s), 0 quarantined, " +
          "not ready: leases cannot be held: the lease heartbeat has failed for 20s (X)"
      )
      yield* Scope.close(scope, Exit.void)
    }))
})

describe("WorkerLive.telemetryLayer", () => {
  it.live("exports spans and metrics over OTLP/HTTP JSON to the configured endpoint, flushing as it closes", () =>
    Effect.gen(function*() {
      const { received, url } = yield* collector
      const gauge = Metric.gauge("dynastate_test_otlp_gauge")
      yield* Effect.gen(function*() {
        yield* Metric.update(gauge, 42)
        yield* Effect.void.pipe(Effect.withSpan("dynastate.test.span"))
      }).pipe(
        Effect.provide(
          WorkerLive.telemetryLayer({ otlpEndpoint: Option.some(`${url}/`) }, {
            serviceName: "dynastate-test",
            exportInterval: "1 minute"
          })
        )
      )
      // The layer closed: what it held was flushed.
      const traces = received.filter((request) => request.path === "/v1/traces")
      const metrics = received.filter((request) => request.path === "/v1/metrics")
      expect(traces.length).toBeGreaterThan(0)
      expect(metrics.length).toBeGreaterThan(0)
      const spans = spanNames(received)
      expect(spans).toContain("dynastate.test.span")
      expect(traces[0]!.body).toContain("\"service.name\"")
      expect(traces[0]!.body).toContain("dynastate-test")
      expect(metrics.map((request) => request.body).join("\n")).toContain("dynastate_test_otlp_gauge")
    }))

  it.live("without an endpoint, nothing is exported", () =>
    Effect.gen(function*() {
      const { received } = yield* collector
      yield* Effect.void.pipe(
        Effect.withSpan("unexported"),
        Effect.provide(WorkerLive.telemetryLayer({ otlpEndpoint: Option.none() }))
      )
      expect(received).toEqual([])
    }))
})

describe("WorkerLive.withShutdownDeadline", () => {
  const exits: Array<number> = []
  afterEach(() => {
    exits.length = 0
  })

  /** A layer whose stop takes `millis`. */
  const stoppingIn = (millis: number) => Layer.effectDiscard(Effect.addFinalizer(() => Effect.sleep(millis)))

  it.live("a stop that finishes within the deadline exits nothing", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        stoppingIn(50).pipe(WorkerLive.withShutdownDeadline(300, (code) => exits.push(code))),
        scope
      )
      yield* Scope.close(scope, Exit.void)
      yield* Effect.sleep("400 millis")
      expect(exits).toEqual([])
    }))

  it.live("a stop that hangs past the deadline calls the exit with status 1, once", () =>
    Effect.gen(function*() {
      const { layer: logging, lines } = capture()
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        stoppingIn(1_000).pipe(WorkerLive.withShutdownDeadline(200, (code) => exits.push(code))),
        scope
      ).pipe(Effect.provide(logging))
      const stopping = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Effect.sleep("100 millis")
      expect(exits).toEqual([])
      // The deadline's timer fires at 200 ms, or later on a loaded machine; never sooner.
      expect(yield* eventually(() => exits.length > 0, 5_000)).toBe(true)
      yield* Effect.sleep("100 millis") // room for a (wrong) second call to show up
      expect(exits).toEqual([1])
      expect(lines[0]).toContain("stopping the worker")
      expect(lines.some((line) => line.includes("did not stop within shutdown_timeout 200ms"))).toBe(true)
      yield* Fiber.interrupt(stopping)
    }))
})
