/**
 * Partitions: the sustained throughput DynamoDB would allow the store's real request pattern, which DynamoDB Local
 * (no per-partition limits) cannot show. A put-heavy pattern (9 puts to 1 get over `--keys` keys under `/nodes/`)
 * runs against DynamoDB Local with the projection worker (compaction into history at once), every request of
 * store and worker is captured with its consumed capacity (`Trace`), and the partition model (`PartitionModel`)
 * computes the ceiling: the rate at which the busiest partition-key value reaches DynamoDB's documented 1,000 write
 * units (3,000 read units) a second. The peer, one hash key like Teleport's backend, runs the same pattern.
 *
 * Each entry of {@link layouts} is a real run of the store opened with its options. Today there is one, a single
 * partition key per namespace; the partitioned key spaces of issue 14 add theirs there. Until then the bucketed
 * figures are a what-if: the single-partition trace re-mapped (`Remap`), printed as such. The range-read row is the
 * baseline of the merge overhead: a partitioned layout's row beside it gives the overhead. A second pattern of
 * 1 MiB values shows the chunk partition's own ceiling (every large value of a namespace writes its chunks there).
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import type { StoreOptions } from "../../src/programs/store/Store.ts"
import { defaultStoreOptions } from "../../src/programs/store/Store.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { phase } from "../Env.ts"
import * as TeleportStore from "../peer/TeleportStore.ts"
import type { Figure, Row } from "../Report.ts"
import type { Ceiling } from "../simulation/PartitionModel.ts"
import { ceiling, loadsOf, replay } from "../simulation/PartitionModel.ts"
import { namespacePartitions, remap } from "../simulation/Remap.ts"
import type { TracedRequest } from "../simulation/Touches.ts"
import * as Accounting from "../support/Accounting.ts"
import { makeClients, since, snapshot } from "../support/Clients.ts"
import * as Dynastate from "../support/Dynastate.ts"
import { measure } from "../support/Measure.ts"
import * as Trace from "../support/Trace.ts"
import { quiesce } from "./capacity.ts"

/** A way of laying a namespace's keys over partition keys: the store options a run opens the store with. */
export interface Layout {
  readonly name: string
  readonly storeOptions: StoreOptions
}

/** The layouts each run; partitioned key spaces add theirs (a prefix over N buckets) here. */
export const layouts: ReadonlyArray<Layout> = [{ name: "one partition key", storeOptions: defaultStoreOptions }]

/** The prefix the pattern writes under and the what-if spreads: Teleport's busiest range. */
const prefix = "/nodes/"
const namespace = "bench"

/** A captured run: its requests from the measured phase on, and how many logical operations they served. */
interface Run {
  readonly table: string
  readonly requests: ReadonlyArray<TracedRequest>
  readonly operations: number
  /** Operations per second DynamoDB Local served (it throttles nothing). */
  readonly observed: number
  /** Requests of the phase that failed (not in `requests`), by operation and error. */
  readonly failures: ReadonlyArray<Trace.Failure>
}

/** A put-heavy pattern: 9 puts to 1 get, over `keys` keys under the prefix, of one value. */
interface Pattern {
  readonly keys: number
  readonly operations: number
  readonly value: Uint8Array
  readonly label: string
}

const mib = 1024 * 1024

/** The pattern of small values the bench's options describe. */
const smallValues = (env: BenchEnv): Pattern => ({
  keys: env.options.keys,
  operations: env.options.operations,
  value: env.value,
  label: `9 puts : 1 get over ${env.options.keys} keys under ${prefix}, ${env.value.length}-byte values`
})

/** 1 MiB values: every put writes its chunks into the namespace's chunk partition. */
const largeValues = (env: BenchEnv): Pattern => {
  const keys = env.options.quick ? 2 : 16
  return {
    keys,
    operations: env.options.quick ? 4 : 40,
    value: new Uint8Array(randomBytes(mib)),
    label: `9 puts : 1 get over ${keys} keys under ${prefix}, 1 MiB values`
  }
}

const keyOf = (keys: number, i: number) => `${prefix}${String(i % keys).padStart(5, "0")}`
const isGet = (i: number) => i % 10 === 9
const putsIn = (operations: number) => operations - Math.floor(operations / 10)

const clientsFor = (env: BenchEnv) =>
  Effect.acquireRelease(Effect.sync(() => makeClients(env.endpoint)), (c) => Effect.sync(c.destroy))

/** What the pattern runs against: a store's put and get, and a wait until what the writes cause later is done. */
interface Target {
  readonly put: (key: string) => Effect.Effect<unknown, unknown>
  readonly get: (key: string) => Effect.Effect<unknown, unknown>
  /** Waits until `events` writes in all were applied by whatever follows them (the worker), if anything does. */
  readonly settle: (events: number) => Effect.Effect<void>
}

/** Writes every key once (the steady state is of keys that exist), then captures the measured phase. */
const capture = (env: BenchEnv, pattern: Pattern, trace: Trace.Trace, table: string, target: Target) =>
  Effect.gen(function*() {
    const { keys, operations } = pattern
    const concurrency = Math.min(keys, env.options.concurrency)
    yield* measure({ operations: keys, concurrency }, (i) => target.put(keyOf(keys, i)))
    yield* target.settle(keys)
    const mark = Trace.mark(trace)
    const sample = yield* measure(
      { operations, concurrency },
      (i) => isGet(i) ? target.get(keyOf(keys, i)) : target.put(keyOf(keys, i))
    )
    yield* target.settle(keys + putsIn(operations))
    return {
      table,
      ...Trace.since(trace, mark),
      operations,
      observed: sample.operations / sample.seconds
    } satisfies Run
  })

/** The pattern on dynastate opened with `layout`, its worker running (compaction into history at once). */
const runDynastate = (env: BenchEnv, pattern: Pattern, layout: Layout, name: string) =>
  Effect.scoped(Effect.gen(function*() {
    const clients = yield* clientsFor(env)
    const trace = Trace.make()
    Trace.record(clients.dynamodb, trace)
    const table = `bench-partitions-${name}-${env.run}`
    yield* Dynastate.provision(clients, table)
    const { store, worker } = yield* Dynastate.open({
      clients,
      location: { table, namespace },
      key: env.key,
      calls: { generate: 0, wrap: 0, unwrap: 0 },
      storeOptions: layout.storeOptions,
      worker: { retention: { _tag: "Forever" }, group: "bench" }
    })
    return yield* capture(env, pattern, trace, table, {
      put: (key) => store.put({ key, value: pattern.value }),
      get: (key) => store.get(key),
      settle: (events) => quiesce(clients, worker, events)
    })
  }))

/** The same pattern on the peer (one hash key, nothing after its writes). */
const runPeer = (env: BenchEnv, pattern: Pattern) =>
  Effect.scoped(Effect.gen(function*() {
    const clients = yield* clientsFor(env)
    const trace = Trace.make()
    Trace.record(clients.dynamodb, trace, { partition: "HashKey", sort: "FullPath" })
    const table = `bench-partitions-peer-${env.run}`
    yield* TeleportStore.ensureTable(clients.dynamodb, table)
    const peer = TeleportStore.make(clients.dynamodb, table)
    return yield* capture(env, pattern, trace, table, {
      put: (key) => peer.put(key, pattern.value),
      get: (key) => peer.get(key),
      settle: () => Effect.void
    })
  }))

const fixed = (value: number, digits = 2) => Number.isFinite(value) ? value.toFixed(digits) : "∞"
const percent = (share: number) => `${(share * 100).toFixed(share < 0.1 ? 1 : 0)}%`

/** A partition-key value as printed: NUL as `\0`, the event table as `events`, the lease table as `leases`. */
const partitionName = (table: string, pk: string) => {
  const kind = table.endsWith(".projections") ? "leases" : table.includes("peer") ? "peer" : "events"
  return `${kind}/${pk.replaceAll("\u0000", "\\0")}`
}

/** With `BENCH_ACCOUNTING=1`: each partition-key value's units per operation of a run, to stderr. */
const printLoads = (label: string, run: Run) =>
  Effect.sync(() => {
    if (!Accounting.enabled()) return
    const lines = loadsOf(run.requests).map((load) =>
      `${fixed(load.writeUnits / run.operations, 3).padStart(9)} WRU ${
        fixed(load.readUnits / run.operations, 3).padStart(9)
      } RRU  ${partitionName(load.table, load.pk)}`
    )
    console.error(`  partitions, ${label}: per operation\n    ${lines.join("\n    ")}`)
  })

/** A ceiling as a figure: operations per second, the units per second it means, and what limits it. */
const ceilingFigure = (c: Ceiling, extra?: string): Figure => ({
  throughput: c.operationsPerSecond,
  detail: [
    `${fixed(c.writeUnitsPerSecond, 0)} WCU/s + ${fixed(c.readUnitsPerSecond, 0)} RCU/s at the ceiling`,
    `${fixed(c.writeUnitsPerOperation)} WRU + ${
      fixed(c.readUnitsPerOperation)
    } RRU per op over ${c.partitions} partition keys`,
    c.bottleneck === undefined ?
      "no units" :
      `limited by ${partitionName(c.bottleneck.table, c.bottleneck.pk)} ${c.bottleneck.kind}s (${
        fixed(c.bottleneck.unitsPerOperation)
      } units/op, ${percent(c.bottleneck.share)} of them)`,
    ...(extra === undefined ? [] : [extra])
  ].join(" · ")
})

/** The throttled share when the pattern is offered at `factor` × its ceiling, for 60 simulated seconds. */
const replayFigure = (run: Run, requests: ReadonlyArray<TracedRequest>, c: Ceiling, factor: number): Figure => {
  const result = replay(requests, {
    operations: run.operations,
    offeredOperationsPerSecond: factor * c.operationsPerSecond,
    seconds: 60
  })
  return {
    value: result.throttledWriteShare * 100,
    unit: "% of WCU throttled",
    detail: `${
      fixed(result.offeredOperationsPerSecond, 0)
    } ops/s offered, ${result.throttledSteps} of ${result.steps} s over a limit${
      result.worst === undefined ? "" : `, most on ${partitionName(result.worst.table, result.worst.pk)}`
    }`
  }
}

/**
 * A range read over `size` keys on dynastate opened with `layout`: latency, requests and read units per read. With
 * a partitioned layout beside the single-partition one, the difference is what merging partitions costs.
 */
export const rangeCosts = (env: BenchEnv, layout: Layout, index: number) =>
  Effect.scoped(Effect.gen(function*() {
    const clients = yield* clientsFor(env)
    const table = `bench-partitions-range-${index}-${env.run}`
    yield* Dynastate.provision(clients, table)
    const { store } = yield* Dynastate.open({
      clients,
      location: { table, namespace },
      key: env.key,
      calls: { generate: 0, wrap: 0, unwrap: 0 },
      storeOptions: layout.storeOptions
    })
    const size = Math.max(...env.options.rangeSizes)
    yield* measure(
      { operations: size, concurrency: env.options.concurrency },
      (i) => store.put({ key: keyOf(size, i), value: env.value })
    )
    const rounds = env.options.quick ? 2 : 10
    const before = snapshot(clients.counters)
    const figure = yield* phase(clients, { operations: rounds, concurrency: 1 }, () =>
      Effect.flatMap(store.getRange(prefix, `${prefix}~`), (items) =>
        items.length === size ? Effect.void : Effect.die(new Error(`the range held ${items.length} of ${size} keys`))))
    const used = since(clients.counters, before)
    return {
      size,
      figure: {
        ...figure,
        throughput: undefined,
        detail: `${fixed(used.readUnits / rounds)} RRU per read`
      } satisfies Figure
    }
  }))

/** Simulated ceilings of one partition key and of a bucketed prefix, replays around them, and range-read costs. */
export const partitions: Workload = {
  name: "partitions",
  run: (env) =>
    Effect.gen(function*() {
      const pattern = smallValues(env)
      const peerRun = yield* runPeer(env, pattern)
      const peerCeiling = ceiling(peerRun.requests, peerRun.operations)
      yield* printLoads("peer", peerRun)
      const runs: Array<{ layout: Layout; run: Run; ceiling: Ceiling }> = []
      for (const [index, layout] of layouts.entries()) {
        const run = yield* runDynastate(env, pattern, layout, `${index}`)
        runs.push({ layout, run, ceiling: ceiling(run.requests, run.operations) })
        yield* printLoads(layout.name, run)
      }
      const rows: Array<Row> = []
      for (const { layout, run, ceiling: c } of runs) {
        rows.push({
          workload: `partitions: simulated sustained ceiling, ${layout.name} (${pattern.label})`,
          peer: ceilingFigure(peerCeiling, `${fixed(peerRun.observed, 0)} ops/s on DynamoDB Local`),
          dynastate: ceilingFigure(c, `${fixed(run.observed, 0)} ops/s on DynamoDB Local, worker running`),
          better: "higher",
          note: rows.length === 0
            ? "DynamoDB's documented 1,000 WCU / 3,000 RCU per partition, applied to the requests each store sent"
            : undefined
        })
      }
      // The what-if: the baseline run's trace as if the prefix were spread over hash buckets.
      const baseline = runs[0]!
      const bucketed: Array<{ buckets: number; requests: ReadonlyArray<TracedRequest>; ceiling: Ceiling }> = []
      for (const buckets of env.options.quick ? [16] : [16, 64]) {
        const requests = remap(baseline.run.requests, {
          prefix,
          buckets,
          partitions: namespacePartitions(baseline.run.table, namespace)
        })
        const c = ceiling(requests, baseline.run.operations)
        bucketed.push({ buckets, requests, ceiling: c })
        rows.push({
          workload:
            `partitions: simulated ceiling, ${prefix} over ${buckets} hash buckets (what-if: the one-partition ` +
            `trace re-mapped, not a run of a partitioned store)`,
          peer: ceilingFigure(peerCeiling),
          dynastate: ceilingFigure(
            c,
            `${
              fixed(c.operationsPerSecond / baseline.ceiling.operationsPerSecond, 1)
            }× dynastate's one-partition ceiling`
          ),
          better: "higher"
        })
      }
      for (const factor of [0.8, 1.5]) {
        rows.push({
          workload: `partitions: replay at ${factor}× each one's ceiling, ${baseline.layout.name}`,
          peer: replayFigure(peerRun, peerRun.requests, peerCeiling, factor),
          dynastate: replayFigure(baseline.run, baseline.run.requests, baseline.ceiling, factor),
          better: "lower"
        })
      }
      const widest = bucketed[0]!
      rows.push({
        workload:
          `partitions: replay at 1.5× the one-partition ceiling, ${prefix} over ${widest.buckets} buckets (what-if)`,
        dynastate: replayFigure(
          baseline.run,
          widest.requests,
          widest.ceiling,
          (1.5 * baseline.ceiling.operationsPerSecond) / widest.ceiling.operationsPerSecond
        ),
        better: "lower"
      })
      // Large values: the chunks of every value of the namespace share one partition key.
      const large = largeValues(env)
      const largeRun = yield* runDynastate(env, large, layouts[0]!, "large")
      const largeCeiling = ceiling(largeRun.requests, largeRun.operations)
      yield* printLoads(`${layouts[0]!.name}, 1 MiB values`, largeRun)
      const mibPerSecond = (c: Ceiling) =>
        `${
          fixed((c.operationsPerSecond * putsIn(large.operations) * large.value.length) / large.operations / mib, 1)
        } MiB/s put`
      rows.push({
        workload: `partitions: simulated sustained ceiling, ${layouts[0]!.name} (${large.label})`,
        dynastate: ceilingFigure(largeCeiling, mibPerSecond(largeCeiling)),
        better: "higher"
      })
      const largeBuckets = 16
      const largeBucketed = ceiling(
        remap(largeRun.requests, {
          prefix,
          buckets: largeBuckets,
          partitions: namespacePartitions(largeRun.table, namespace)
        }),
        largeRun.operations
      )
      rows.push({
        workload:
          `partitions: simulated ceiling, ${prefix} over ${largeBuckets} hash buckets, chunks following their ` +
          `key (what-if: re-mapped, ${large.label})`,
        dynastate: ceilingFigure(
          largeBucketed,
          `${mibPerSecond(largeBucketed)} · ${
            fixed(largeBucketed.operationsPerSecond / largeCeiling.operationsPerSecond, 1)
          }× the one-partition ceiling`
        ),
        better: "higher"
      })
      for (const [index, layout] of layouts.entries()) {
        const range = yield* rangeCosts(env, layout, index)
        rows.push({
          workload: `partitions: range read of ${range.size} keys, ${layout.name}`,
          dynastate: range.figure,
          better: "lower",
          note: layouts.length === 1 ? "the baseline of the merge overhead: no partitioned layout yet" : undefined
        })
      }
      const failures = [...peerRun.failures, ...runs.flatMap((r) => r.run.failures), ...largeRun.failures]
      if (failures.length > 0) {
        const counts = new Map<string, number>()
        for (const f of failures) {
          counts.set(`${f.operation} ${f.error}`, (counts.get(`${f.operation} ${f.error}`) ?? 0) + 1)
        }
        rows.push({
          workload: "partitions: requests that failed in the captured phases (billed, but not in the traces)",
          dynastate: {
            value: failures.length,
            unit: "requests",
            detail: [...counts].map(([k, n]) => `${n} ${k}`).join(", ")
          },
          better: "lower"
        })
      }
      return rows
    })
}
