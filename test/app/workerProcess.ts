/**
 * A worker process for the shutdown test: `WorkerLive.layer` configured from `DYNASTATE_*`, with one projection of
 * keys under `/slow/` that takes `SLOW_MILLIS` per event, run by Effect's Node runtime (SIGTERM and SIGINT
 * interrupt it) until stopped.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { load } from "../../src/infra/StoreConfig.ts"
import * as WorkerLive from "../../src/programs/app/WorkerLive.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"

const slow = Projection.make({
  name: "slow",
  prefixes: ["/slow/"],
  apply: (event) =>
    Effect.logInfo(`slow applying ${event.key}`).pipe(
      Effect.andThen(Effect.sleep(Number(process.env.SLOW_MILLIS ?? "0"))),
      Effect.andThen(Effect.logInfo(`slow applied ${event.key}`))
    )
})

NodeRuntime.runMain(
  Effect.flatMap(load(), (config) => Layer.launch(WorkerLive.layer(config, Effect.succeed([slow]))))
)
