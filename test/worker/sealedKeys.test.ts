/**
 * The projection worker on sealed keys (see `SealedKeys`): it records a sealed key's expiry with nobody reading (the
 * watch hears it under the real key), compacts its superseded events into history (still read back under the real
 * key), and hands projections the stored key with the real key beside it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import type { WatchEvent } from "../../src/programs/store/Watch.ts"
import { openStore, storedKeyOf } from "../support/TestStore.ts"
import { archivedEvents, bytes, eventually, freshEnv, recorder, startWorker } from "./support.ts"

const sealed: ReadonlyArray<SealedPrefix> = [{ prefix: "/tokens/", seal: "rest" }]

describe("the worker on sealed keys", () => {
  it.live(
    "records a sealed key's expiry, compacts its history, and gives projections the stored and the real key",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-sealed")
        const store = yield* openStore(env.location, { client: env.client, storeOptions: { sealed } })
        const seen = recorder("sealed-projection", ["/tokens/"])
        yield* startWorker(env, { group: "sealed", projections: [seen.projection], storeOptions: { sealed } })
        const key = "/tokens/join-8c1f"
        const stored = yield* storedKeyOf(env.location, sealed, key, env.client)

        const watched: Array<WatchEvent> = []
        const watcher = yield* store.watch({ prefixes: ["/tokens/"] }).pipe(
          Stream.runForEach((event) => Effect.sync(() => void watched.push(event))),
          Effect.forkChild
        )
        yield* eventually("the watch is live", Effect.sync(() => expect(watched[0]?._tag).toBe("Init")), 10_000, 20)

        yield* store.put({ key, value: bytes("v1") })
        yield* store.put({ key, value: bytes("v2"), expires: Date.now() + 1500 })

        // Nobody reads: the worker records the expiry, and the watch hears it under the real key.
        yield* eventually(
          "the watch heard the expiry",
          Effect.sync(() =>
            expect(watched.filter((event) => event._tag === "Expire").map((event) => "key" in event && event.key))
              .toEqual([key])
          ),
          15_000
        )
        // Compaction moved the superseded events into the history area and, settling at once, buried the expiry
        // too: all filed under the stored key.
        yield* eventually(
          "superseded events in the history area",
          Effect.gen(function*() {
            expect((yield* archivedEvents(env)).filter((event) => event.key === stored).map((event) => event.seq))
              .toEqual([1, 2, 3])
          }),
          15_000
        )
        const history = yield* Stream.runCollect(store.history(key))
        expect(history.map((event) => [event.key, event.seq, event.op])).toEqual([
          [key, 1, "put"],
          [key, 2, "put"],
          [key, 3, "expire"]
        ])
        // Projections see stored keys (their prefixes match those), with the real key beside.
        yield* eventually(
          "the projection saw every event",
          Effect.sync(() =>
            expect(seen.log.map(({ event }) => [event.key, event.realKey, event.seq])).toEqual([
              [stored, key, 1],
              [stored, key, 2],
              [stored, key, 3]
            ])
          ),
          10_000
        )
        yield* Fiber.interrupt(watcher)
      }),
    60_000
  )
})
