/**
 * A watching application process for the stream-readers test: the store configured from `DYNASTATE_*` (with
 * `DYNASTATE_WATCH_ENDPOINT` its watches go through the worker), one watch of `WATCH_PREFIX`, each delivery printed
 * as a line `WATCH {json}` (`Init`, or the change's tag, key, seq and value), until stopped.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Stream } from "effect"
import { load } from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import { Store } from "../../src/programs/store/Store.ts"

const decoder = new TextDecoder()

NodeRuntime.runMain(
  Effect.flatMap(load(), (config) =>
    Effect.gen(function*() {
      const store = yield* Store
      yield* store.watch({ prefixes: [process.env.WATCH_PREFIX ?? ""] }).pipe(
        Stream.runForEach((event) =>
          Effect.sync(() => {
            const line = event._tag === "Init"
              ? { tag: "Init" }
              : event._tag === "Put"
              ? { tag: "Put", key: event.item.key, seq: event.seq, value: decoder.decode(event.item.value) }
              : { tag: event._tag, key: event.key, seq: event.seq }
            process.stdout.write(`WATCH ${JSON.stringify(line)}\n`)
          })
        )
      )
    }).pipe(Effect.provide(StoreLive.layer(config))))
)
