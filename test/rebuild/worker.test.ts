/**
 * Rebuilds beside a live worker (which compacts and buries tombstones as it
 * goes): a view added late, rebuilt while writes continue, ends as the
 * store's state; and a worker refuses two projections of one name.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import * as Key from "../../src/domain/Key.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import * as Rebuild from "../../src/programs/worker/Rebuild.ts"
import { eventTableLayer, openStore } from "../support/TestStore.ts"
import { eventually, expectComplete, freshEnv, recorder, startWorker, text, workload } from "../worker/support.ts"
import { entries, memoryProjection } from "./support.ts"

const prefix = "/w/"
const keys = Array.from({ length: 12 }, (_, i) => `${prefix}${i}`)

describe("rebuild beside a live worker", () => {
  it.live(
    "a view added after the fact and rebuilt while writes go on ends as the store's state",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("rebuild-live")
        const store = yield* openStore(env.location, { client: env.client })
        const group = "live"
        const warmUp = recorder("warm-up", [prefix])
        const first = yield* startWorker(env, { group, projections: [warmUp.projection] })
        yield* workload(store, keys, 40, 11)
        yield* expectComplete(env, store, warmUp.log, prefix)
        yield* first.stop

        // The worker resumes after everything written so far, and only half the keys are written again:
        // only the rebuild can bring the other half into the view.
        const untouched = keys.slice(6)
        const live = yield* store.getRange(prefix, Key.rangeEnd(prefix))
        expect(live.some((item) => untouched.includes(item.key))).toBe(true)
        const view = memoryProjection("late-view", [prefix])
        yield* startWorker(env, { group, projections: [view.projection] })
        const writer = yield* Effect.forkChild(workload(store, keys.slice(0, 6), 60, 12))
        const context = yield* Layer.build(eventTableLayer(env.location, { client: env.client }))
        const outcome = yield* Rebuild.rebuild(view.projection).pipe(Effect.provide(context))
        yield* Fiber.join(writer)
        expect(outcome._tag).toBe("Replayed")

        yield* eventually(
          "the view shows the store's state",
          Effect.gen(function*() {
            const live = yield* store.getRange(prefix, Key.rangeEnd(prefix))
            const shown = entries(view.state).filter(([, entry]) => entry.value !== undefined).map((
              [key, entry]
            ) => [key, entry.value])
            expect(shown).toEqual(
              live.filter((item) => item.key.startsWith(prefix)).map((item) => [item.key, text(item.value)])
            )
          }),
          30_000
        )
      }),
    90_000
  )

  it.live("a worker refuses two projections of one name (a projection of yours cannot take a built-in's)", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("rebuild-names")
      const impostor = Projection.make({ name: "history", prefixes: [], apply: () => Effect.void })
      const error = yield* Effect.flip(startWorker(env, { group: "names", projections: [impostor] }))
      expect(error).toMatchObject({ _tag: "DuplicateProjectionName", projection: "history" })
      expect((error as Error).message).toBe(
        `two projections are named "history"; projection names must be unique within a worker`
      )
    }))
})
