/**
 * Range reads of 100, 1000 and 5000 one-event keys (the last over several 1 MB pages), ascending and descending, and
 * deleteRange: dynastate's `getRange` / `items` / `deleteRange` beside the peer's paged `Query` and its
 * query-then-`BatchWriteItem` deletion. Beside the range reads, the raw SDK sends the `Query` pages a dynastate range
 * read sends, without decoding them.
 */
import { QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { Effect, Stream } from "effect"
import * as SortKey from "../../src/domain/SortKey.ts"
import * as EventRecord from "../../src/infra/EventRecord.ts"
import { keyPartition } from "../../src/infra/PartitionKeys.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { alternate, phase } from "../Env.ts"
import type { Row } from "../Report.ts"
import { figureOf } from "../Report.ts"
import { measure, sampleOf, timed } from "../support/Measure.ts"

const keyAt = (prefix: string, i: number) => `${prefix}${String(i).padStart(6, "0")}`

/** Writes `count` keys under `prefix` in both stores. */
const fill = (env: BenchEnv, prefix: string, count: number) =>
  Effect.gen(function*() {
    const size = { operations: count, concurrency: env.options.concurrency }
    yield* measure(size, (i) => env.peer.put(keyAt(prefix, i), env.value))
    yield* measure(size, (i) => env.dynastate.put({ key: keyAt(prefix, i), value: env.value }))
  })

/**
 * The pages of a dynastate range read by the raw SDK: every item of the keys' live range, in the direction asked,
 * as the store's `getRange` and `items` request them (one partition: the bench's namespace is not partitioned).
 */
const rawRange = (env: BenchEnv, start: string, end: string, descending: boolean) =>
  Effect.promise(async () => {
    const items: Array<Record<string, AttributeValue>> = []
    let from: Record<string, AttributeValue> | undefined
    do {
      const page = await env.dynastateClients.dynamodb.send(
        new QueryCommand({
          ...EventRecord.rangeQuery(
            env.dynastateTable,
            keyPartition(env.location, start),
            SortKey.lowerBound(start),
            SortKey.upperBound(end)
          ),
          ScanIndexForward: !descending,
          ExclusiveStartKey: from
        })
      )
      for (const item of page.Items ?? []) items.push(item)
      from = page.LastEvaluatedKey
    } while (from !== undefined)
    return items
  })

const expectCount = (what: string, expected: number) => (items: ReadonlyArray<unknown>) =>
  items.length === expected
    ? Effect.void
    : Effect.die(new Error(`${what} returned ${items.length} items, expected ${expected}`))

/** Reads of whole ranges, each checked to return every key. */
export const rangeRead: Workload = {
  name: "range",
  run: (env) =>
    Effect.gen(function*() {
      const rows: Array<Row> = []
      const paged = env.options.pagedRangeKeys
      for (const count of paged > 0 ? [...env.options.rangeSizes, paged] : env.options.rangeSizes) {
        const prefix = `/range${count}/`
        const end = `${prefix}~`
        yield* fill(env, prefix, count)
        // About a second of reads per phase: a few dozen reads of a few milliseconds each made the figure swing
        // with a single pause of the machine's (runs gave 0.45 and 0.79 for the same code).
        const reads = env.options.quick ? 1 : Math.max(10, Math.min(200, Math.floor(40_000 / count)))
        const size = { operations: reads, concurrency: 1 }
        for (const descending of [false, true]) {
          const peerRead = () =>
            env.peer.getRange(prefix, end, descending).pipe(Effect.tap(expectCount("peer range", count)))
          const dynastateRead = () =>
            (descending
              ? Stream.runCollect(env.dynastate.items({ start: prefix, end, descending: true }))
              : env.dynastate.getRange(prefix, end)).pipe(Effect.tap(expectCount("dynastate range", count)))
          const rawRead = () => rawRange(env, prefix, end, descending).pipe(Effect.tap(expectCount("raw range", count)))
          if (!env.options.quick) {
            // Warm-up: the first reads of a range pay for compiling their paths, in Node and in the JVM.
            const warm = { operations: Math.max(3, Math.floor(reads / 10)), concurrency: 1 }
            yield* measure(warm, peerRead)
            yield* measure(warm, rawRead)
            yield* measure(warm, dynastateRead)
          }
          const { dynastate, peer, raw } = yield* alternate(
            env.options,
            () => phase(env.peerClients, size, peerRead, true),
            () => phase(env.dynastateClients, size, dynastateRead, true),
            "higher",
            () => phase(env.dynastateClients, size, rawRead, true)
          )
          rows.push({
            workload: `range read of ${count} keys, ${descending ? "descending" : "ascending"}`,
            raw,
            peer,
            dynastate,
            better: "higher"
          })
        }
      }
      return rows
    })
}

/** deleteRange of a freshly written range, timed per call; throughput counts keys deleted per second. */
export const deleteRange: Workload = {
  name: "delete-range",
  run: (env) =>
    Effect.gen(function*() {
      const count = env.options.quick ? 4 : 100
      const times = env.options.quick ? 1 : 3
      const side = (name: "peer" | "dynastate") =>
        Effect.gen(function*() {
          const latencies: Array<number> = []
          let deletedTotal = 0
          for (let round = 0; round < times; round++) {
            const prefix = `/delete-range/${name}/${round}/`
            const size = { operations: count, concurrency: env.options.concurrency }
            if (name === "peer") yield* measure(size, (i) => env.peer.put(keyAt(prefix, i), env.value))
            else yield* measure(size, (i) => env.dynastate.put({ key: keyAt(prefix, i), value: env.value }))
            const deletion: Effect.Effect<number, unknown> = name === "peer"
              ? env.peer.deleteRange(prefix, `${prefix}~`)
              : env.dynastate.deleteRange(prefix, `${prefix}~`)
            const { value: deleted, millis } = yield* timed(deletion)
            if (deleted !== count) {
              return yield* Effect.die(new Error(`${name} deleteRange deleted ${deleted} of ${count}`))
            }
            latencies.push(millis)
            deletedTotal += deleted
          }
          const seconds = latencies.reduce((a, b) => a + b, 0) / 1000
          return { ...figureOf(sampleOf(latencies, seconds)), throughput: deletedTotal / seconds }
        })
      const peer = yield* side("peer")
      const dynastate = yield* side("dynastate")
      return [{
        workload: `deleteRange of ${count} keys (keys/s; latency per call)`,
        peer,
        dynastate,
        better: "higher"
      }]
    })
}
