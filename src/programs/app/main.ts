/**
 * `npm start`: loads the configuration (the embedded DynamoDB Local by
 * default, shared with every other process of its data directory), provisions
 * the table and the first key, runs the store's tour, says which CLI commands
 * to try next, then keeps the projection worker running until Ctrl-C.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Fiber, Stream } from "effect"
import * as Key from "../../domain/Key.ts"
import * as StoreConfig from "../../infra/StoreConfig.ts"
import { Store } from "../store/Store.ts"
import { legacyDataWarning, resolvePaths } from "./DataDir.ts"
import { demo } from "./Demo.ts"
import * as WorkerLive from "./WorkerLive.ts"

const bytes = (value: string) => new TextEncoder().encode(value)

/** Shows the worker at work: an expiry recorded with nobody reading the key, seen by a watcher. */
const expiryWithoutReaders = Effect.gen(function*() {
  const store = yield* Store
  const key = Key.join("demo", "sessions", "worker")
  yield* Console.log(`\n== the projection worker records expiries by itself; a watcher sees them`)
  const watcher = yield* store.watch({ prefixes: [key] }).pipe(
    Stream.filter((event) => event._tag !== "Init"),
    Stream.take(2),
    Stream.runForEach((event) =>
      Console.log(`watch: ${event._tag} ${"item" in event ? event.item.key : "key" in event ? event.key : ""}`)
    ),
    Effect.timeout("20 seconds"),
    Effect.forkChild
  )
  yield* Effect.sleep("200 millis")
  const now = Date.now()
  yield* store.put({ key, value: bytes("worker session"), expires: now + 1000 })
  yield* Console.log(`put ${key} expiring in 1 s, and nobody reads it`)
  yield* Fiber.join(watcher).pipe(Effect.catchTag("TimeoutError", () => Console.log("no expiry seen within 20 s")))
})

/** The CLI commands to try next, against the store this process keeps running. */
export const nextSteps = (config: StoreConfig.StoreConfig): string => {
  const cli = "npm run -s cli --"
  const variables = Object.keys(process.env).filter((name) => name.startsWith("DYNASTATE_"))
  return [
    "\n== next: the CLI, in another terminal, on this same store" +
    (StoreConfig.isEmbedded(config) ? ` (the embedded DynamoDB Local stays up while this runs)` : ""),
    ...(variables.length === 0 ? [] : [`   (with the same ${variables.join(", ")})`]),
    `  ${cli} get /demo/users/alice`,
    `  ${cli} put /demo/hello world --ttl 1h`,
    `  ${cli} ls /demo/ -o json`,
    `  ${cli} watch --prefix /demo/            # then put something from a third terminal`,
    `  ${cli} history /demo/users/alice`,
    `  ${cli} --help                           # every command, the global flags and the exit codes`
  ].join("\n")
}

const main = Effect.gen(function*() {
  const loaded = yield* StoreConfig.load()
  // Beside the configuration file (or in the user's data directory): the same key whatever the working directory.
  const config = resolvePaths(loaded, { configFile: process.env["DYNASTATE_CONFIG"] })
  const legacy = legacyDataWarning(config)
  if (legacy !== undefined) yield* Effect.logWarning(legacy)
  yield* Effect.logInfo(`table ${config.tableName}, namespace ${config.namespace}, data in ${config.dataDir}`)
  yield* Effect.gen(function*() {
    yield* demo
    yield* expiryWithoutReaders
    yield* Console.log(nextSteps(config))
    yield* Console.log(
      `\nthe projection worker keeps running (status every 5 s); Ctrl-C stops it and releases its leases`
    )
    return yield* Effect.never
  }).pipe(Effect.provide(WorkerLive.layer(config)))
})

NodeRuntime.runMain(main)
