/**
 * `npm start`: loads the configuration (the embedded DynamoDB Local by
 * default), provisions the table, and runs the store's demonstration.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import * as StoreConfig from "../infra/StoreConfig.ts"
import { demo } from "./Demo.ts"
import * as StoreLive from "./StoreLive.ts"

const main = Effect.gen(function*() {
  const config = yield* StoreConfig.load()
  yield* Effect.logInfo(`table ${config.tableName}, namespace ${config.namespace}`)
  yield* demo.pipe(Effect.provide(StoreLive.layer(config)))
})

NodeRuntime.runMain(main)
