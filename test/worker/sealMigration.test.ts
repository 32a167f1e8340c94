/**
 * The worker over a seal migration (see `SealMigration`): removing a clear key's events once they moved to the
 * sealed form is no rollback, and a worker that reads the clear keys' old stream records only after the migration
 * (lagging, or started later) neither raises the alarm nor brings a clear key back into the table.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import * as SealMigration from "../../src/programs/store/SealMigration.ts"
import { scanAll } from "../store/contract/harness.ts"
import { eventTableLayer, openStore, testLayoutLease } from "../support/TestStore.ts"
import { bytes, eventually, freshEnv, recorder, startWorker, text } from "./support.ts"

const sealed: ReadonlyArray<SealedPrefix> = [{ prefix: "/tokens/", seal: "rest" }]

describe("the worker over a seal migration", () => {
  it.live(
    "raises no rollback alarm and leaves no clear key behind, even when it reads the old records late",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-sealmigrate")
        const clear = yield* openStore(env.location, { client: env.client })
        const keys = Array.from({ length: 6 }, (_, index) => `/tokens/late-${index}-secret`)
        for (const key of keys) {
          yield* clear.put({ key, value: bytes("v1") })
          yield* clear.put({ key, value: bytes("v2") })
        }
        yield* clear.delete(keys[0]!)
        const summary = yield* Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(eventTableLayer(env.location, { client: env.client }))
          return yield* SealMigration.run(sealed, { lease: testLayoutLease }).pipe(Effect.provide(context))
        }))
        expect(summary.map((entry) => entry.done)).toEqual([true])

        // Started now, it reads every record from the stream's start: the clear keys' writes, then their removals.
        const seen = recorder("late-projection", ["/tokens/"])
        const worker = yield* startWorker(env, {
          group: "late",
          projections: [seen.projection],
          storeOptions: { sealed }
        })
        yield* eventually(
          "the worker read the migration's records",
          Effect.map(worker.status, (status) => expect(status.eventsApplied).toBeGreaterThanOrEqual(13)),
          20_000
        )
        yield* Effect.sleep("2 seconds")
        expect((yield* worker.status).tampering).toEqual([])
        // Projections were given the writes, under the clear keys they were made under, and nothing of the move.
        expect(seen.log.map(({ event }) => event.key).every((key) => keys.includes(key))).toBe(true)
        expect(seen.log).toHaveLength(13)
        const items = yield* scanAll(env.client, env.location.table)
        const leftovers = items.filter((item) =>
          Object.values(item).some((value) =>
            value.B !== undefined && Buffer.from(value.B).toString("latin1").includes("-secret")
          )
        )
        expect(leftovers).toEqual([])
        const store = yield* openStore(env.location, { client: env.client, storeOptions: { sealed } })
        expect(text((yield* store.get(keys[1]!)).value)).toBe("v2")
      }),
    90_000
  )
})
