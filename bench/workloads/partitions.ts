/**
 * Partitions: the sustained throughput DynamoDB would allow the store's real request pattern, which DynamoDB Local
 * (no per-partition limits) cannot show. A put-heavy pattern (9 puts to 1 get over `--keys` keys under `/nodes/`)
 * runs against DynamoDB Local with the projection worker (compaction into history at once), every request of
 * store and worker is captured with its consumed capacity (`Trace`), and the partition model (`PartitionModel`)
 * computes the ceiling: the rate at which the busiest partition-key value reaches DynamoDB's documented 1,000 write
 * units (3,000 read units) a second. The peer, one hash key like Teleport's backend, runs the same pattern.
 *
 * Each layout (`partitionLayouts`: one partition key, `/nodes/` in its own partition, over 16 and 64 hash buckets)
 * is a real run of the store opened with it, so its ceiling comes from the requests the partitioned store sent. The
 * one-partition trace re-mapped as if bucketed (`Remap`) is printed beside each partitioned run as a cross-check of
 * the model. A second pattern of 1 MiB values shows where large values' chunks go (one partition key per namespace,
 * or beside each bucket) and what a MiB costs; `partitionRanges` measures the merge overhead of range reads.
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import type { BenchEnv, Workload } from "../Env.ts"
import * as TeleportStore from "../peer/TeleportStore.ts"
import type { Figure, Row } from "../Report.ts"
import type { Ceiling } from "../simulation/PartitionModel.ts"
import { ceiling, loadsOf, replay } from "../simulation/PartitionModel.ts"
import { namespacePartitions, remap } from "../simulation/Remap.ts"
import { inArea, spreadOf } from "../simulation/Spread.ts"
import type { TracedRequest } from "../simulation/Touches.ts"
import * as Accounting from "../support/Accounting.ts"
import { measure, percentile, timed } from "../support/Measure.ts"
import * as Trace from "../support/Trace.ts"
import { quiesce } from "./capacity.ts"
import type { Layout } from "./partitionLayouts.ts"
import { clientsFor, layoutsOf, namespace, openLayout, prefix } from "./partitionLayouts.ts"
import { rangeRows } from "./partitionRanges.ts"

/** A captured run: its requests from the measured phase on, and how many logical operations they served. */
interface Run {
  readonly table: string
  readonly requests: ReadonlyArray<TracedRequest>
  readonly operations: number
  /** Operations per second DynamoDB Local served (it throttles nothing). */
  readonly observed: number
  /** Latencies (ms, sorted) of the measured phase's puts and gets. */
  readonly putMillis: ReadonlyArray<number>
  readonly getMillis: ReadonlyArray<number>
  /** Requests of the phase that failed (not in `requests`), by operation and error. */
  readonly failures: ReadonlyArray<Trace.Failure>
  /** Events the worker had not applied when the capture ended (its later writes are missing from the trace). */
  readonly unapplied: number
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

/** 1 MiB values: every put writes its chunks into its key's chunk partition. */
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

/** What the pattern runs against: a store's put and get, and a wait until what the writes cause later is done. */
interface Target {
  readonly put: (key: string) => Effect.Effect<unknown, unknown>
  readonly get: (key: string) => Effect.Effect<unknown, unknown>
  /**
   * Waits until `events` writes in all were applied by whatever follows them (the worker), if anything does, or
   * until it gives up: how many were not.
   */
  readonly settle: (events: number) => Effect.Effect<number>
}

/** `effect`, its latency pushed onto `into`. */
const timedInto = (into: Array<number>, effect: Effect.Effect<unknown, unknown>) =>
  Effect.map(timed(effect), ({ millis }) => {
    into.push(millis)
  })

/** Writes every key once (the steady state is of keys that exist), then captures the measured phase. */
const capture = (env: BenchEnv, pattern: Pattern, trace: Trace.Trace, table: string, target: Target) =>
  Effect.gen(function*() {
    const { keys, operations } = pattern
    const concurrency = Math.min(keys, env.options.concurrency)
    yield* measure({ operations: keys, concurrency }, (i) => target.put(keyOf(keys, i)))
    yield* target.settle(keys)
    const mark = Trace.mark(trace)
    const putMillis: Array<number> = []
    const getMillis: Array<number> = []
    const sample = yield* measure(
      { operations, concurrency },
      (i) =>
        isGet(i) ? timedInto(getMillis, target.get(keyOf(keys, i))) : timedInto(putMillis, target.put(keyOf(keys, i)))
    )
    const unapplied = yield* target.settle(keys + putsIn(operations))
    return {
      unapplied,
      table,
      ...Trace.since(trace, mark),
      operations,
      observed: sample.operations / sample.seconds,
      putMillis: putMillis.sort((a, b) => a - b),
      getMillis: getMillis.sort((a, b) => a - b)
    } satisfies Run
  })

/** The pattern on dynastate opened with `layout` on a table of its own, its worker running (compaction at once). */
const runDynastate = (env: BenchEnv, pattern: Pattern, layout: Layout, name: string) =>
  Effect.scoped(Effect.gen(function*() {
    const clients = yield* clientsFor(env)
    const trace = Trace.make()
    Trace.record(clients.dynamodb, trace)
    const table = `bench-partitions-${name}-${env.run}`
    const { store, worker } = yield* openLayout(env, clients, table, layout, {
      retention: { _tag: "Forever" },
      group: "bench"
    })
    return yield* capture(env, pattern, trace, table, {
      put: (key) => store.put({ key, value: pattern.value }),
      get: (key) => store.get(key),
      settle: (events) =>
        Effect.gen(function*() {
          yield* quiesce(clients, worker, events, env.options.quick ? 200 : 1000)
          const applied = worker === undefined ? events : (yield* worker.status).eventsApplied
          return Math.max(0, events - applied)
        })
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
      settle: () => Effect.succeed(0)
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

/** A layout's run of a pattern and its ceiling. */
interface Measured {
  readonly layout: Layout
  readonly run: Run
  readonly ceiling: Ceiling
}

/** The pattern on every layout, each on a table of its own; `tag` names the tables. */
const runLayouts = (env: BenchEnv, pattern: Pattern, tag: string) =>
  Effect.gen(function*() {
    const measured: Array<Measured> = []
    for (const [index, layout] of layoutsOf(env.options.quick).entries()) {
      const run = yield* runDynastate(env, pattern, layout, `${tag}${index}`)
      measured.push({ layout, run, ceiling: ceiling(run.requests, run.operations) })
      yield* printLoads(`${layout.name}, ${pattern.label}`, run)
    }
    return measured
  })

/** A warning when the worker was behind at the end of a capture: the trace then lacks some of its writes. */
const behind = (run: Run): Array<string> =>
  run.unapplied === 0 ? [] : [`⚠ the worker was ${run.unapplied} events behind at the end: its trace is short`]

/** How many times `c` is the baseline's ceiling, in words. */
const times = (c: Ceiling, baseline: Ceiling) =>
  `${fixed(c.operationsPerSecond / baseline.operationsPerSecond, 1)}× the one-partition ceiling`

/**
 * The model's cross-check: the one-partition run's trace re-mapped as if `layout` were in place, beside the real
 * run of it. Close agreement says the model sees the partitioned store's requests as they are.
 */
const crossCheck = (baseline: Measured, layout: Layout, real: Ceiling): string => {
  const modelled = ceiling(
    remap(baseline.run.requests, {
      prefix,
      buckets: layout.buckets,
      partitions: namespacePartitions(baseline.run.table, namespace)
    }),
    baseline.run.operations
  )
  return `cross-check: the one-partition trace re-mapped gives ${fixed(modelled.operationsPerSecond, 0)}/s ` +
    `(real ÷ re-mapped ${fixed(real.operationsPerSecond / modelled.operationsPerSecond)})`
}

/** The ceiling rows of the small-value pattern, one per layout, and the replays around them. */
const smallRows = (pattern: Pattern, peerRun: Run, runs: ReadonlyArray<Measured>): Array<Row> => {
  const peerCeiling = ceiling(peerRun.requests, peerRun.operations)
  const baseline = runs[0]!
  const rows: Array<Row> = runs.map(({ layout, run, ceiling: c }, index) => ({
    workload: `partitions: simulated sustained ceiling, ${layout.name} (${pattern.label})`,
    peer: ceilingFigure(peerCeiling, `${fixed(peerRun.observed, 0)} ops/s on DynamoDB Local`),
    dynastate: ceilingFigure(
      c,
      [
        `${fixed(run.observed, 0)} ops/s on DynamoDB Local, worker running`,
        ...(index === 0 ? [] : [times(c, baseline.ceiling), crossCheck(baseline, layout, c)]),
        ...behind(run)
      ].join(" · ")
    ),
    better: "higher",
    note: index === 0
      ? "DynamoDB's documented 1,000 WCU / 3,000 RCU per partition, applied to the requests each store sent"
      : undefined
  }))
  for (const factor of [0.8, 1.5]) {
    rows.push({
      workload: `partitions: replay at ${factor}× each one's ceiling, ${baseline.layout.name}`,
      peer: replayFigure(peerRun, peerRun.requests, peerCeiling, factor),
      dynastate: replayFigure(baseline.run, baseline.run.requests, baseline.ceiling, factor),
      better: "lower"
    })
  }
  for (const { layout, run, ceiling: c } of runs.slice(1)) {
    rows.push({
      workload: `partitions: replay at 1.5× the one-partition ceiling, ${layout.name}`,
      dynastate: replayFigure(
        run,
        run.requests,
        c,
        (1.5 * baseline.ceiling.operationsPerSecond) / c.operationsPerSecond
      ),
      better: "lower"
    })
  }
  return rows
}

/** MiB per second put at a ceiling of the 1 MiB pattern. */
const mibPerSecond = (pattern: Pattern, c: Ceiling) =>
  `${
    fixed((c.operationsPerSecond * putsIn(pattern.operations) * pattern.value.length) / pattern.operations / mib, 1)
  } MiB/s put`

/** The 1 MiB pattern's ceiling per layout, where its chunks went, and what a MiB cost on DynamoDB Local. */
const largeRows = (pattern: Pattern, runs: ReadonlyArray<Measured>): Array<Row> => {
  const baseline = runs[0]!
  const rows: Array<Row> = runs.map(({ layout, run, ceiling: c }, index) => {
    const chunks = spreadOf(loadsOf(run.requests), inArea("chunks"), "write")
    return {
      workload: `partitions: simulated sustained ceiling, ${layout.name} (${pattern.label})`,
      dynastate: ceilingFigure(
        c,
        [
          mibPerSecond(pattern, c),
          `chunk writes over ${chunks.partitions} partition keys, the busiest ${percent(chunks.busiestShare)}`,
          ...(index === 0 ? [] : [times(c, baseline.ceiling)]),
          ...behind(run)
        ].join(" · ")
      ),
      better: "higher",
      note: index === 0
        ? `${pattern.keys} keys: a bucketed layout's chunks go to at most ${pattern.keys} buckets`
        : undefined
    }
  })
  const { run } = baseline
  const units = loadsOf(run.requests).reduce(
    (sum, load) => ({ write: sum.write + load.writeUnits, read: sum.read + load.readUnits }),
    { write: 0, read: 0 }
  )
  const mibs = pattern.value.length / mib
  const puts = putsIn(pattern.operations)
  rows.push({
    workload: `partitions: large values per MiB, ${baseline.layout.name} (${pattern.label}, worker running)`,
    dynastate: {
      value: percentile(run.putMillis, 50) / mibs,
      unit: "ms/MiB put",
      p50: percentile(run.putMillis, 50),
      p99: percentile(run.putMillis, 99),
      detail: [
        ...(run.getMillis.length === 0 ? [] : [`get p50 ${fixed(percentile(run.getMillis, 50) / mibs, 0)} ms/MiB`]),
        `${fixed(units.write / puts / mibs, 0)} WRU per MiB put (chunks, event, history copy)`,
        `${fixed(units.read / pattern.operations / mibs, 0)} RRU per MiB put or got (the gets, and the worker ` +
        `reading each put back)`
      ].join(" · ")
    },
    better: "lower",
    note: "concurrent; one operation at a time, puts and gets apart, for 1-16 MiB: the `large` workload"
  })
  return rows
}

/** The failed requests of the captured phases, if any. */
const failureRows = (runs: ReadonlyArray<Run>): Array<Row> => {
  const failures = runs.flatMap((run) => run.failures)
  if (failures.length === 0) return []
  const counts = new Map<string, number>()
  for (const f of failures) counts.set(`${f.operation} ${f.error}`, (counts.get(`${f.operation} ${f.error}`) ?? 0) + 1)
  return [{
    workload: "partitions: requests that failed in the captured phases (billed, but not in the traces)",
    dynastate: {
      value: failures.length,
      unit: "requests",
      detail: [...counts].map(([k, n]) => `${n} ${k}`).join(", ")
    },
    better: "lower"
  }]
}

/** Simulated ceilings of each layout, replays around them, large values per layout, and range-read costs. */
export const partitions: Workload = {
  name: "partitions",
  run: (env) =>
    Effect.gen(function*() {
      const small = smallValues(env)
      const peerRun = yield* runPeer(env, small)
      yield* printLoads("peer", peerRun)
      const smallRuns = yield* runLayouts(env, small, "")
      const large = largeValues(env)
      const largeRuns = yield* runLayouts(env, large, "large")
      const ranges = yield* rangeRows(env, layoutsOf(env.options.quick))
      return [
        ...smallRows(small, peerRun, smallRuns),
        ...largeRows(large, largeRuns),
        ...ranges,
        ...failureRows([peerRun, ...smallRuns.map((m) => m.run), ...largeRuns.map((m) => m.run)])
      ]
    })
}
