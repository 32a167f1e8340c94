/**
 * atomicWrite of 2 and 64 keys: dynastate's `atomicWrite` (reads every key, then one `TransactWriteItems`
 * appending each key's next event) beside the peer's single `TransactWriteItems` of puts. Concurrent writes use
 * disjoint key sets, all written once before timing.
 */
import { Effect } from "effect"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { alternate, phase } from "../Env.ts"
import type { Row } from "../Report.ts"
import { measure } from "../support/Measure.ts"

const keysOf = (width: number, sets: number, i: number) =>
  Array.from({ length: width }, (_, j) => `/atomic/${width}/${i % sets}/${String(j).padStart(3, "0")}`)

const concurrencyOf = (env: BenchEnv) => (env.options.quick ? 2 : 4)
const setsOf = (env: BenchEnv) => concurrencyOf(env) * 2

const peerWrite = (env: BenchEnv, width: number, i: number) =>
  env.peer.atomicWrite(
    keysOf(width, setsOf(env), i).map((key) => ({ key, condition: "whatever" as const, put: env.value }))
  )

const dynastateWrite = (env: BenchEnv, width: number, i: number) =>
  env.dynastate.atomicWrite(
    keysOf(width, setsOf(env), i).map((key) => ({ key, condition: Condition.whatever, action: Action.put(env.value) }))
  )

/** Atomic writes of 2 and of 64 keys. */
export const atomicWrite: Workload = {
  name: "atomic",
  run: (env) =>
    Effect.gen(function*() {
      const rows: Array<Row> = []
      for (const width of env.options.quick ? [2, 8] : [2, 64]) {
        const concurrency = concurrencyOf(env)
        const warm = { operations: setsOf(env), concurrency }
        if (!env.options.quick) {
          yield* measure(warm, (i) => peerWrite(env, width, i))
          yield* measure(warm, (i) => dynastateWrite(env, width, i))
        }
        const operations = env.options.quick
          ? 2
          : Math.max(16, Math.floor(env.options.operations / (width === 2 ? 10 : 50)))
        const size = { operations, concurrency, seconds: env.options.seconds }
        const { dynastate, peer } = yield* alternate(
          env.options,
          () => phase(env.peerClients, size, (i) => peerWrite(env, width, i)),
          () => phase(env.dynastateClients, size, (i) => dynastateWrite(env, width, i))
        )
        rows.push({
          workload: `atomicWrite of ${width} keys, concurrency ${concurrency}`,
          peer,
          dynastate,
          better: "higher"
        })
      }
      return rows
    })
}
