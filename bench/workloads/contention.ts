/**
 * Compare-and-swap on one contended key: `--concurrency` fibers of one process incrementing a counter by read
 * then compare-and-swap, and the same split over two OS processes. Each run checks that the counter ends at the
 * number of increments that won (a lost or doubled increment fails the workload).
 */
import { Effect } from "effect"
import type { BenchEnv, Workload } from "../Env.ts"
import type { CounterSettings } from "../processes/counterProcess.ts"
import type { Figure, Row } from "../Report.ts"
import { figureOf } from "../Report.ts"
import * as Children from "../support/Children.ts"
import { since, snapshot } from "../support/Clients.ts"
import * as Counter from "../support/Counter.ts"
import { sampleOf } from "../support/Measure.ts"

const secondsOf = (env: BenchEnv) => env.options.seconds ?? (env.options.quick ? 1 : 8)

/** Sets the counter to 0 in both stores. */
const reset = (env: BenchEnv, counter: string) =>
  Effect.all([
    env.peer.put(counter, Counter.encode(0)),
    env.dynastate.put({ key: counter, value: Counter.encode(0) })
  ])

/** The figure of some counter results, after checking the counter holds their sum. */
const checked = (name: string, final: Uint8Array, results: ReadonlyArray<Counter.CounterResult>, requests?: number) =>
  Effect.gen(function*() {
    const increments = results.reduce((sum, r) => sum + r.increments, 0)
    if (Counter.decode(final) !== increments) {
      return yield* Effect.die(new Error(`${name}: counter is ${Counter.decode(final)} after ${increments} increments`))
    }
    const seconds = Math.max(...results.map((r) => r.seconds))
    const figure = figureOf(sampleOf(results.flatMap((r) => r.latencies), seconds), requests)
    return { ...figure, throughput: increments / seconds } satisfies Figure
  })

const inProcess = (env: BenchEnv, round: number) =>
  Effect.gen(function*() {
    const counter = `/counter/one-process/${round}`
    yield* reset(env, counter)
    const fibers = env.options.concurrency
    const peerBefore = snapshot(env.peerClients.counters)
    const peerResult = yield* Counter.run(Counter.peerTarget(env.peer, counter), fibers, secondsOf(env))
    const peerRequests = since(env.peerClients.counters, peerBefore).requests
    const peer = yield* checked("peer", yield* Counter.peerTarget(env.peer, counter).read, [peerResult], peerRequests)
    const dynBefore = snapshot(env.dynastateClients.counters)
    const target = Counter.dynastateTarget(env.dynastate, counter)
    const dynResult = yield* Counter.run(target, fibers, secondsOf(env))
    const dynRequests = since(env.dynastateClients.counters, dynBefore).requests
    const dynastate = yield* checked("dynastate", yield* target.read, [dynResult], dynRequests)
    return { peer, dynastate }
  })

/** The same counter split over two child processes (half the fibers each), both started before either begins. */
const twoProcesses = (env: BenchEnv, store: "peer" | "dynastate", counter: string) =>
  Effect.scoped(Effect.gen(function*() {
    const fibers = Math.max(1, Math.floor(env.options.concurrency / 2))
    const settings: CounterSettings = {
      endpoint: env.endpoint,
      store,
      table: store === "peer" ? env.peer.table : env.dynastateTable,
      namespace: "bench",
      key: env.key,
      counter,
      fibers,
      seconds: secondsOf(env)
    }
    const script = new URL("../processes/counterProcess.ts", import.meta.url)
    const children = yield* Effect.all([
      Children.start(script, { BENCH_COUNTER: JSON.stringify(settings) }),
      Children.start(script, { BENCH_COUNTER: JSON.stringify(settings) })
    ])
    yield* Effect.all(children.map((child) => child.ready), { concurrency: "unbounded" })
    for (const child of children) child.send("go")
    const results = yield* Effect.all(children.map((child) => child.result), { concurrency: "unbounded" })
    const target = store === "peer"
      ? Counter.peerTarget(env.peer, counter)
      : Counter.dynastateTarget(env.dynastate, counter)
    return yield* checked(`${store}, two processes`, yield* target.read, results as Array<Counter.CounterResult>)
  }))

/** The counter in one process and in two. */
export const contention: Workload = {
  name: "cas",
  run: (env) =>
    Effect.gen(function*() {
      const one: Array<{ peer: Figure; dynastate: Figure }> = []
      for (let round = 0; round < env.options.rounds; round++) one.push(yield* inProcess(env, round))
      const bestOf = (figures: ReadonlyArray<Figure>) =>
        figures.reduce((a, b) => ((b.throughput ?? 0) > (a.throughput ?? 0) ? b : a))
      const counter = "/counter/two-processes"
      yield* reset(env, counter)
      const peer2 = yield* twoProcesses(env, "peer", counter)
      const dynastate2 = yield* twoProcesses(env, "dynastate", counter)
      const fibers = env.options.concurrency
      return [
        {
          workload: `counter: ${fibers} fibers, get + compareAndSwap on one key (increments/s)`,
          peer: bestOf(one.map((r) => r.peer)),
          dynastate: bestOf(one.map((r) => r.dynastate)),
          better: "higher"
        },
        {
          workload: `counter: 2 processes × ${Math.max(1, Math.floor(fibers / 2))} fibers (increments/s)`,
          peer: peer2,
          dynastate: dynastate2,
          better: "higher"
        }
      ] satisfies Array<Row>
    })
}
