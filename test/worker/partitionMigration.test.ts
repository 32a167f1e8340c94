/**
 * The worker over a layout migration (see `PartitionMigration`): removing a key's items from its old partition once
 * they moved to its new one is no rollback, also for a worker that reads the old records only after the migration
 * settled (lagging, or started later): its table, on the new layout, finds each moved key at its new partition with
 * the removed seq or a later one. Projections are given the writes and nothing of the moves.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { Layout } from "../../src/domain/Partitioning.ts"
import * as PartitionMigration from "../../src/programs/store/PartitionMigration.ts"
import { eventTableLayer, openStore, testLayoutLease } from "../support/TestStore.ts"
import { bytes, eventually, freshEnv, recorder, startWorker, text } from "./support.ts"

const bucketed: Layout = [{ prefix: "/nodes/", name: "nodes", buckets: 4 }]

describe("the worker over a layout migration", () => {
  it.live(
    "raises no rollback alarm for the moves, even when it reads the old records after the layout settled",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-pmig")
        const old = yield* openStore(env.location, { client: env.client })
        const keys = Array.from({ length: 6 }, (_, index) => `/nodes/n${index}`)
        for (const key of keys) {
          yield* old.put({ key, value: bytes("v1") })
          yield* old.put({ key, value: bytes("v2") })
        }
        yield* old.delete(keys[0]!)
        const location = { ...env.location, partitions: bucketed }
        const last = yield* Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(eventTableLayer(location, { client: env.client }))
          return yield* PartitionMigration.run({ lease: testLayoutLease }).pipe(Effect.provide(context))
        }))
        expect(last).toMatchObject({ found: keys.length, moved: keys.length, done: true })

        // Started now, it reads every record from the stream's start: the writes, then the moves' removals.
        const seen = recorder("late-projection", ["/nodes/"])
        const worker = yield* startWorker({ ...env, location }, {
          group: "late",
          projections: [seen.projection],
          storeOptions: { partitions: bucketed }
        })
        yield* eventually(
          "the worker read the migration's records",
          Effect.map(worker.status, (status) => expect(status.eventsApplied).toBeGreaterThanOrEqual(13)),
          20_000
        )
        yield* Effect.sleep("2 seconds")
        expect((yield* worker.status).tampering).toEqual([])
        expect(seen.log.map(({ event }) => event.key).every((key) => keys.includes(key))).toBe(true)
        expect(seen.log).toHaveLength(13)
        const store = yield* openStore(location, { client: env.client, storeOptions: { partitions: bucketed } })
        expect(text((yield* store.get(keys[1]!)).value)).toBe("v2")
      }),
    90_000
  )
})
