/**
 * The projection worker: how fast it applies a backlog (events per second, from start to the last event applied,
 * compaction into history and expiry included) against raw `GetRecords` reading the same stream, and its lag
 * under a steady write load afterwards, on a DynamoDB Local warmed up first (see `warmUp`). The peer has no worker:
 * the baseline is the raw SDK.
 */
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb"
import { DescribeStreamCommand, GetRecordsCommand, GetShardIteratorCommand } from "@aws-sdk/client-dynamodb-streams"
import { Effect } from "effect"
import type { Location } from "../../src/infra/EventRecord.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { streamStartKey } from "../Env.ts"
import type { Row } from "../Report.ts"
import { figureOf } from "../Report.ts"
import * as Accounting from "../support/Accounting.ts"
import type { BenchClients } from "../support/Clients.ts"
import { makeClients } from "../support/Clients.ts"
import * as Dynastate from "../support/Dynastate.ts"
import type { KeyringCalls } from "../support/Dynastate.ts"
import { measure, sampleOf } from "../support/Measure.ts"
import { perOperation, serverCpuMicros, serverCpuSince } from "../support/ServerCpu.ts"

/** Reads every record of the table's stream from its trim horizon until `expected` were seen; returns them. */
const readStream = (clients: BenchClients, table: string, expected: number) =>
  Effect.promise(async () => {
    const description = await clients.dynamodb.send(new DescribeTableCommand({ TableName: table }))
    const arn = description.Table!.LatestStreamArn!
    const stream = await clients.streams.send(new DescribeStreamCommand({ StreamArn: arn }))
    let records = 0
    const deadline = Date.now() + 60_000
    for (const shard of stream.StreamDescription?.Shards ?? []) {
      const open = shard.SequenceNumberRange?.EndingSequenceNumber === undefined
      let iterator = (await clients.streams.send(
        new GetShardIteratorCommand({ StreamArn: arn, ShardId: shard.ShardId!, ShardIteratorType: "TRIM_HORIZON" })
      )).ShardIterator
      // A closed shard ends with no next iterator; an open one never ends, so it is read until all were seen.
      while (iterator !== undefined && (!open || records < expected) && Date.now() < deadline) {
        const page = await clients.streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }))
        records += page.Records?.length ?? 0
        iterator = page.NextShardIterator
      }
    }
    return records
  })

/**
 * How far behind the worker is at `now`: the age of the oldest acknowledged write it has not applied yet (writes
 * are numbered in acknowledgement order; the worker counts the events it applied), 0 when it has them all. The
 * worker's own per-shard gauge is set only when a batch ends, so it cannot show a batch that takes long.
 */
const lagAt = (acknowledged: ReadonlyArray<number>, applied: number, now: number): number =>
  applied >= acknowledged.length ? 0 : now - acknowledged[applied]!

/** The keys the workload's events are spread over: four events a key, so the worker compacts as it applies. */
const keysOf = (env: BenchEnv) => Math.max(1, Math.floor(env.options.workerEvents / 4))

/** The projection worker of the bench's stores over `location`, compacting into history at once; ends with the scope. */
const openWorker = (env: BenchEnv, clients: BenchClients, location: Location, calls: KeyringCalls) =>
  Effect.map(
    Dynastate.open({
      clients,
      location,
      key: env.key,
      calls,
      worker: { retention: { _tag: "Forever" }, group: "bench" }
    }),
    ({ worker }) => worker!
  )

/**
 * Events the warm-up writes and has a worker apply before anything is measured (each one a put and about two of the
 * worker's writes). A fresh DynamoDB Local's JVM compiles its write path over its first ~15,000 writes: in probes
 * its CPU per conditional write fell from about 2 ms to 0.4, so a backlog measured on a fresh server measured that.
 */
const warmUpEvents = 5000

/**
 * Warms the server up on a table of its own, written after the measured table's first record so that the measured
 * table's writes pay no scan of it (see `Env.streamStartKey`): a store writes `warmUpEvents` events there and a worker
 * applies them, then both are closed.
 */
const warmUp = (env: BenchEnv, clients: BenchClients) =>
  Effect.scoped(Effect.gen(function*() {
    const table = `bench-worker-warm-up-${env.run}`
    yield* Dynastate.provision(clients, table)
    const location = { table, namespace: "bench" }
    const calls = { generate: 0, wrap: 0, unwrap: 0 }
    const { store } = yield* Dynastate.open({ clients, location, key: env.key, calls })
    const keys = keysOf(env)
    yield* measure(
      { operations: warmUpEvents, concurrency: env.options.concurrency },
      (i) => store.put({ key: `/worker/${i % keys}`, value: env.value })
    )
    const worker = yield* openWorker(env, clients, location, calls)
    const deadline = Date.now() + 120_000
    while ((yield* worker.status).eventsApplied < warmUpEvents && Date.now() < deadline) yield* Effect.sleep(50)
  }))

/** Backlog throughput against raw GetRecords, then lag under load. */
export const projectionWorker: Workload = {
  name: "worker",
  run: (env: BenchEnv) =>
    Effect.gen(function*() {
      // Its own DynamoDB Local: every write the worker makes would otherwise pay a scan of the records all earlier
      // workloads left in the stream log (see `Env.streamStartKey`), and its figure would depend on their order.
      const endpoint = yield* env.freshEndpoint
      const clients = yield* Effect.acquireRelease(Effect.sync(() => makeClients(endpoint)), (c) =>
        Effect.sync(c.destroy))
      const table = `bench-worker-${env.run}`
      yield* Dynastate.provision(clients, table)
      const location = { table, namespace: "bench" }
      const calls = { generate: 0, wrap: 0, unwrap: 0 }
      const { store } = yield* Dynastate.open({ clients, location, key: env.key, calls })
      // The measured table's stream begins before the warm-up's writes (see `warmUp`), with one event that is not
      // the backlog's: it is left out of what the raw read and the worker are counted for.
      const before = env.options.quick ? 0 : 1
      if (before > 0) {
        yield* store.put({ key: streamStartKey, value: env.value })
        yield* warmUp(env, clients)
      }
      const events = env.options.workerEvents
      const keys = keysOf(env)
      const acknowledged: Array<number> = []
      const write = (i: number) =>
        store.put({ key: `/worker/${i % keys}`, value: env.value }).pipe(
          Effect.tap(() =>
            Effect.sync(() => acknowledged.push(performance.now()))
          )
        )
      yield* measure({ operations: events, concurrency: env.options.concurrency }, write)

      const rawStarted = performance.now()
      const records = (yield* readStream(clients, table, before + events)) - before
      const rawSeconds = (performance.now() - rawStarted) / 1000
      if (records < events) return yield* Effect.die(new Error(`the stream held ${records} of ${events} records`))

      const accounted = Accounting.snapshotAccounts(clients.accounts)
      const workerStarted = performance.now()
      const cpuBefore = process.cpuUsage()
      const serverBefore = serverCpuMicros()
      const running = yield* openWorker(env, clients, location, calls)
      // On a loaded machine the backlog can take long: the figure is what was applied within the cap.
      const capMillis = (env.options.quick ? 10 : 180) * 1000
      const deadline = Date.now() + capMillis
      let applied = 0
      let firstAppliedAt: number | undefined
      while (applied < events && Date.now() < deadline) {
        applied = (yield* running.status).eventsApplied - before
        if (applied > 0) firstAppliedAt ??= performance.now()
        if (applied < events) yield* Effect.sleep(20)
      }
      if (applied <= 0) return yield* Effect.die(new Error(`the worker applied no event within ${capMillis} ms`))
      const workerSeconds = (performance.now() - workerStarted) / 1000
      // Both sides' CPU over the backlog, per event applied: what bounds the worker on this machine.
      const cpu = process.cpuUsage(cpuBefore)
      const serverMicros = serverCpuSince(serverBefore)
      if (Accounting.enabled()) {
        const lines = Accounting.report(clients.accounts, accounted, applied)
        yield* Effect.sync(() =>
          console.error(
            `  worker backlog: per event applied (${workerSeconds.toFixed(1)} s, the first after ${
              (((firstAppliedAt ?? workerStarted) - workerStarted) / 1000).toFixed(1)
            } s)\n    ${lines.join("\n    ")}`
          )
        )
      }

      // Lag: a steady write load with the worker running (after the backlog, or what the cap left of it), sampled
      // every 100 ms.
      const lags: Array<number> = []
      const loadSeconds = env.options.quick ? 1 : 10
      yield* Effect.all([
        measure(
          { operations: 0, concurrency: 4, seconds: loadSeconds },
          write
        ),
        Effect.gen(function*() {
          const deadline = Date.now() + loadSeconds * 1000
          while (Date.now() < deadline) {
            const applied = (yield* running.status).eventsApplied - before
            lags.push(lagAt(acknowledged, applied, performance.now()))
            yield* Effect.sleep(100)
          }
        })
      ], { concurrency: "unbounded" })
      const lag = figureOf(sampleOf(lags, loadSeconds))
      return [
        {
          workload: `projection worker: backlog of ${events} events (events/s)`,
          raw: { throughput: records / rawSeconds, detail: "GetRecords only" },
          dynastate: {
            throughput: applied / workerSeconds,
            cpuPerOp: (cpu.user + cpu.system) / applied,
            serverCpuPerOp: perOperation(serverMicros, applied),
            detail: applied >= events
              ? "start to last event applied, compaction at once"
              : `${applied} of ${events} applied in the ${capMillis / 1000} s cap, compaction at once`
          },
          better: "higher",
          baseline: "raw"
        },
        {
          workload: "projection worker: lag under 4 writing fibers (age of the oldest write not yet applied)",
          dynastate: { p50: lag.p50, p99: lag.p99, detail: `${lags.length} samples` },
          better: "lower"
        }
      ] satisfies Array<Row>
    })
}
