/**
 * A projection-worker process of the fault campaign: the store's own worker (`WorkerLive.workerLayer`: history
 * compaction and expiry) over `StoreLive.layer`, through its fault proxy, with a `ReplicatedView` of the `/kv/`
 * keys and an `IndexView` of them (by the last character of the value) beside the built-in projections. On the stdin line `dump` it prints its replica (see Protocol.ts).
 * Compaction runs with a short settle time checked against the writers' fence (see Campaign.ts for the margins).
 */
import { Effect, Layer, References } from "effect"
import * as readline from "node:readline"
import { load } from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import { statusLine, workerLayer } from "../../src/programs/app/WorkerLive.ts"
import * as IndexView from "../../src/programs/views/IndexView.ts"
import * as ReplicatedView from "../../src/programs/views/ReplicatedView.ts"
import { defaultCompactionOptions } from "../../src/programs/worker/Compaction.ts"
import { defaultWorkerOptions } from "../../src/programs/worker/ProjectionWorker.ts"
import { WorkerHealth } from "../../src/programs/worker/WorkerHealth.ts"
import { text } from "../properties/linearizability/storeHistory.ts"
import { indexName, indexOf, logLevel, numberSetting, send, storeEnvironment, textSetting } from "./Protocol.ts"

const fence = {
  maxStateAgeMillis: numberSetting("CHAOS_MAX_STATE_AGE"),
  writeTimeoutMillis: numberSetting("CHAOS_WRITE_TIMEOUT")
}

const program = Effect.gen(function*() {
  const table = textSetting("CHAOS_TABLE")
  const config = yield* load({ env: storeEnvironment() })
  // The fence the configuration gave the store is the one compaction's settle time is checked against.
  if (config.writeFence.maxStateAgeMillis !== fence.maxStateAgeMillis) throw new Error("the store ignored the fence")
  const store = yield* Layer.build(StoreLive.layer(config))
  const replica = yield* Effect.provide(ReplicatedView.make("chaos-replica", "/kv/"), store)
  const byValue = yield* Effect.provide(
    IndexView.make({ name: indexName, prefix: "/kv/", indexOf: (item) => indexOf(text(item.value)) }),
    store
  )
  const worker = workerLayer(
    {
      ...defaultWorkerOptions(table),
      leases: { table: textSetting("CHAOS_LEASE_TABLE"), group: "chaos" },
      leaseMillis: numberSetting("CHAOS_LEASE_MILLIS")
    },
    { ...defaultCompactionOptions, settleMillis: numberSetting("CHAOS_SETTLE"), writerFence: fence },
    [replica.projection, byValue.projection]
  )
  // The status line (held shards, lag, events applied) every 2 s: seen with CHAOS_LOG_LEVEL=Info.
  const health = WorkerHealth.layer({
    readyMaxLagMillis: 30_000,
    leaseMillis: numberSetting("CHAOS_LEASE_MILLIS"),
    sampleMillis: 1000
  })
  yield* Layer.build(
    statusLine("2 seconds").pipe(
      Layer.provideMerge(health),
      Layer.provideMerge(worker),
      Layer.provide(Layer.succeedContext(store))
    )
  )
  send({ ready: true })
  const lines = readline.createInterface({ input: process.stdin })
  yield* Effect.callback<void>((resume) => {
    lines.on("line", (line) => {
      if (line.trim() !== "dump") return
      Effect.runFork(
        Effect.map(replica.view.items, (items) =>
          send({
            dump: items.map((item) => ({ key: item.key, value: text(item.value), revision: item.revision ?? "" }))
          }))
      )
    })
    lines.on("close", () => resume(Effect.void))
  })
})

Effect.runPromise(
  Effect.scoped(program).pipe(Effect.provideService(References.MinimumLogLevel, logLevel()), Effect.asVoid)
).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`worker failed: ${String(error)}\n`)
    process.exit(1)
  }
)
