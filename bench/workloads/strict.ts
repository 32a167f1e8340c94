/**
 * Strict write mode (every append a transaction that checks its predecessor) beside the default fenced mode: put
 * and get at the run's concurrency over the same keys, with the DynamoDB requests and the capacity units each put
 * consumed (reads of keys not yet cached included). The peer's put and get are the baseline, as everywhere.
 */
import { Effect } from "effect"
import type { StoreService } from "../../src/programs/store/Store.ts"
import { defaultStoreOptions } from "../../src/programs/store/Store.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { alternate, phase, sizeOf } from "../Env.ts"
import type { Figure, Row } from "../Report.ts"
import { figureOf } from "../Report.ts"
import { since, snapshot } from "../support/Clients.ts"
import * as Dynastate from "../support/Dynastate.ts"
import type { PhaseSize } from "../support/Measure.ts"
import { measure } from "../support/Measure.ts"

/** A dynastate phase with the write and read units it consumed per operation in its detail. */
const withUnits = <E>(env: BenchEnv, size: PhaseSize, op: (i: number) => Effect.Effect<unknown, E>) =>
  Effect.gen(function*() {
    const before = snapshot(env.dynastateClients.counters)
    const sample = yield* measure(size, op)
    const used = since(env.dynastateClients.counters, before)
    const operations = Math.max(1, sample.operations)
    return {
      ...figureOf(sample, used.requests),
      detail: `${(used.writeUnits / operations).toFixed(2)} WRU + ${
        (used.readUnits / operations).toFixed(2)
      } RRU per op`
    } satisfies Figure
  })

/** Fenced and strict put and get over the same keys. */
export const strictMode: Workload = {
  name: "strict",
  run: (env) =>
    Effect.gen(function*() {
      const { store: strict } = yield* Dynastate.open({
        clients: env.dynastateClients,
        location: { table: env.dynastateTable, namespace: "bench" },
        key: env.key,
        calls: env.keyringCalls,
        storeOptions: {
          ...defaultStoreOptions,
          actors: { ...defaultStoreOptions.actors, writeMode: "strict" },
          atomicWrite: { ...defaultStoreOptions.atomicWrite, writeMode: "strict" }
        }
      })
      const keyOf = (i: number) => `/strict/${i % env.options.keys}`
      const size = sizeOf(env, env.options.concurrency)
      const rows: Array<Row> = []
      for (const [mode, store] of [["fenced", env.dynastate], ["strict", strict]] as const) {
        const put = (s: StoreService) => (i: number) => s.put({ key: keyOf(i), value: env.value })
        const puts = yield* alternate(
          env.options,
          () => phase(env.peerClients, size, (i) => env.peer.put(keyOf(i), env.value)),
          () => withUnits(env, size, put(store))
        )
        const gets = yield* alternate(
          env.options,
          () => phase(env.peerClients, size, (i) => env.peer.get(keyOf(i))),
          () => phase(env.dynastateClients, size, (i) => store.get(keyOf(i)))
        )
        rows.push(
          {
            workload: `put, concurrency ${size.concurrency}, ${mode} write mode`,
            peer: puts.peer,
            dynastate: puts.dynastate,
            better: "higher"
          },
          {
            workload: `get, concurrency ${size.concurrency}, ${mode} write mode`,
            peer: gets.peer,
            dynastate: gets.dynastate,
            better: "higher"
          }
        )
      }
      return rows
    })
}
