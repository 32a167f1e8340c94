/**
 * What partitioning costs range reads, measured on DynamoDB Local: the same keys under `/nodes/` read as one range
 * on each layout (one partition key, an own partition, hash buckets), both directions, with latency, requests and
 * the read units DynamoDB reported per read. A range over a bucketed prefix queries every bucket and merges their
 * pages in key order; its figures beside the one-partition ones are the merge overhead. The layouts' reads take
 * turns round by round, so each meets the same machine load.
 */
import { Effect, Stream } from "effect"
import type { StoreService } from "../../src/programs/store/Store.ts"
import type { BenchEnv } from "../Env.ts"
import type { Figure, Row } from "../Report.ts"
import { since, snapshot } from "../support/Clients.ts"
import { measure, percentile, timed } from "../support/Measure.ts"
import type { Layout } from "./partitionLayouts.ts"
import { clientsFor, openLayout, prefix } from "./partitionLayouts.ts"

const rangePrefix = (size: number) => `${prefix}range${size}/`
const keyAt = (size: number, i: number) => `${rangePrefix(size)}${String(i).padStart(6, "0")}`

/** One layout's reads of one range: each read's latency (ms) and the requests and read units they sent. */
interface Reads {
  readonly latencies: Array<number>
  requests: number
  readUnits: number
}

const read = (store: StoreService, size: number, descending: boolean) => {
  const start = rangePrefix(size)
  const end = `${start}~`
  const items = descending
    ? Stream.runCollect(store.items({ start, end, descending: true }))
    : store.getRange(start, end)
  return Effect.flatMap(items, (found) =>
    found.length === size ?
      Effect.void :
      Effect.die(new Error(`the range of ${size} keys returned ${found.length}`)))
}

const ratio = (value: number, baseline: number) => baseline > 0 ? `${(value / baseline).toFixed(2)}×` : "–"

/** The rows: each layout's reads of each range size and direction, with its ratios to the first layout's. */
export const rangeRows = (env: BenchEnv, layouts: ReadonlyArray<Layout>) =>
  Effect.scoped(Effect.gen(function*() {
    const clients = yield* clientsFor(env)
    const stores: Array<StoreService> = []
    for (const [index, layout] of layouts.entries()) {
      const { store } = yield* openLayout(env, clients, `bench-partitions-range-${index}-${env.run}`, layout)
      for (const size of env.options.rangeSizes) {
        yield* measure(
          { operations: size, concurrency: env.options.concurrency },
          (i) => store.put({ key: keyAt(size, i), value: env.value })
        )
      }
      stores.push(store)
    }
    const rows: Array<Row> = []
    for (const size of env.options.rangeSizes) {
      const rounds = env.options.quick ? 1 : Math.max(5, Math.min(30, Math.floor(10_000 / size)))
      for (const descending of [false, true]) {
        const reads: Array<Reads> = stores.map(() => ({ latencies: [], requests: 0, readUnits: 0 }))
        for (let round = 0; round < rounds; round++) {
          for (const [index, store] of stores.entries()) {
            const before = snapshot(clients.counters)
            const { millis } = yield* timed(read(store, size, descending))
            const used = since(clients.counters, before)
            reads[index]!.latencies.push(millis)
            reads[index]!.requests += used.requests
            reads[index]!.readUnits += used.readUnits
          }
        }
        const figures = reads.map((r) => {
          const sorted = [...r.latencies].sort((a, b) => a - b)
          return {
            p50: percentile(sorted, 50),
            p99: percentile(sorted, 99),
            requests: r.requests / rounds,
            readUnits: r.readUnits / rounds
          }
        })
        const baseline = figures[0]!
        for (const [index, layout] of layouts.entries()) {
          const f = figures[index]!
          rows.push({
            workload: `partitions: range read of ${size} keys, ${
              descending ? "descending" : "ascending"
            }, ${layout.name}`,
            dynastate: {
              p50: f.p50,
              p99: f.p99,
              requestsPerOp: f.requests,
              detail: [
                `${f.readUnits.toFixed(1)} RRU per read`,
                ...(index === 0 ? [] : [
                  `vs ${layouts[0]!.name}: p50 ${ratio(f.p50, baseline.p50)}, p99 ${ratio(f.p99, baseline.p99)}, ` +
                  `requests ${ratio(f.requests, baseline.requests)}, RRU ${ratio(f.readUnits, baseline.readUnits)}`
                ])
              ].join(" · ")
            } satisfies Figure,
            better: "lower",
            note: index === 0 && !descending
              ? `measured on DynamoDB Local, ${rounds} reads per layout taking turns; the ratios are the merge overhead`
              : undefined
          })
        }
      }
    }
    return rows
  }))
