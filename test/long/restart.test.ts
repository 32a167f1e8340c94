/**
 * Workers killed (or stopped) at random points of a workload and replaced by
 * new ones: the projection ends up with every event of every key, each key's
 * events first applied in seq order, and a fold equal to the store's state.
 * Events may be applied again after a restart (at least once), never skipped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { openStore } from "../support/TestStore.ts"
import type { WorkerHandle } from "../worker/support.ts"
import {
  eventually,
  expectComplete,
  freshEnv,
  openLease,
  prng,
  recorder,
  startWorker,
  workload
} from "../worker/support.ts"

const prefix = "/r/"
const keys = Array.from({ length: 10 }, (_, i) => `${prefix}k${i}`)

describe("restart", () => {
  it.live(
    "kill and replace the worker at random points (fixed seed): the projection's fold equals the log's, nothing missing",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-restart")
        const store = yield* openStore(env.location, { client: env.client })
        const group = "restart"
        const seen = recorder("restart", [prefix])
        const random = prng(2024)
        const writes = 240
        // Four hand-overs at random steps; the kind of each (crash or graceful stop) is random too.
        const points = new Map<number, "kill" | "stop">()
        while (points.size < 4) points.set(10 + random.int(writes - 20), random.next() < 0.7 ? "kill" : "stop")
        expect([...points.values()]).toContain("kill")

        let generation = 0
        const start = () => startWorker(env, { group, projections: [seen.forWorker(`w${generation}`)] })
        let current: WorkerHandle = yield* start()
        const owners = [current.owner]
        const handOvers: Array<string> = []

        yield* workload(store, keys, writes, 99, (step) =>
          Effect.gen(function*() {
            const how = points.get(step)
            if (how === undefined) return
            // Each hand-over hits a worker that holds the shard and is at work on the writes going on.
            const name = `w${generation}`
            yield* eventually(
              "the current worker holds the shard and applies events",
              Effect.flatMap(openLease(env, group), (lease) =>
                Effect.sync(() => {
                  expect(lease.owner).toBe(current.owner)
                  expect(seen.log.some((applied) => applied.by === name)).toBe(true)
                })),
              10_000,
              5
            )
            yield* how === "kill" ? current.kill : current.stop
            handOvers.push(`${how}@${step}`)
            generation++
            current = yield* start()
            owners.push(current.owner)
          }))

        const { newest, duplicates } = yield* expectComplete(env, store, seen.log, prefix, 40_000)
        expect(newest.size).toBe(keys.length)
        expect(handOvers).toHaveLength(4)
        // The last worker holds the shard now; the epoch went up once per hand-over.
        const lease = yield* openLease(env, group)
        expect(lease.owner).toBe(current.owner)
        expect(lease.epoch).toBe(owners.length)
        expect(lease.checkpoint).toBeDefined()
        // Every generation did real work; a killed worker's last batch may be applied again by its successor.
        expect(new Set(seen.log.map((applied) => applied.by)).size).toBe(owners.length)
        expect(duplicates).toBeLessThan(writes)
      }),
    120_000
  )

  it.live(
    "a worker restarted after a graceful stop resumes from its group's checkpoint instead of the start of the stream",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-resume")
        const store = yield* openStore(env.location, { client: env.client })
        const group = "resume"
        const seen = recorder("resume", [prefix])
        const first = yield* startWorker(env, { group, projections: [seen.forWorker("first")] })
        yield* workload(store, keys, 60, 5)
        yield* expectComplete(env, store, seen.log, prefix)
        const before = yield* openLease(env, group)
        yield* first.stop
        const appliedByFirst = seen.log.length

        yield* startWorker(env, { group, projections: [seen.forWorker("second")] })
        yield* workload(store, keys, 60, 6)
        const { duplicates } = yield* expectComplete(env, store, seen.log, prefix)
        // Everything the first worker checkpointed before stopping is not applied again.
        expect(duplicates).toBe(0)
        expect(seen.log.slice(0, appliedByFirst).every((applied) => applied.by === "first")).toBe(true)
        expect(seen.log.slice(appliedByFirst).every((applied) => applied.by === "second")).toBe(true)
        const after = yield* openLease(env, group)
        expect(after.epoch).toBe(before.epoch + 1)
        expect(after.checkpoint! > before.checkpoint!).toBe(true)
      }),
    60_000
  )
})
