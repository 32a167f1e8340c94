/**
 * Issue 10, defect 4: an append that reaches the table long after its writer decided it. Writer A decides a
 * conditional update, then is frozen (its request held back, its timers late) while writer B deletes the key and
 * compaction buries the tombstone, freeing the seq A's request names. The request then lands in that freed seq: A
 * must not report success, must undo what landed, and the key must stay deleted.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Exit } from "effect"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import { isSafe } from "../../../src/domain/WriteFence.ts"
import { defaultAtomicWriteOptions } from "../../../src/programs/store/AtomicWriter.ts"
import { defaultActorOptions } from "../../../src/programs/store/KeyActors.ts"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import { bytes, faultyClient, isEventPut, outcomeTag } from "./helpers.ts"
import { fence, frozenTimers, lateAppendScenario, settleMillis } from "./lateAppendScenario.ts"

describe("an append acknowledged after its writer's timeout", () => {
  it.live(
    "that landed in a seq compaction freed is undone and reported as not applied: the deleted key stays deleted",
    () =>
      Effect.gen(function*() {
        expect(isSafe(settleMillis, fence, { skewMillis: 0, lateDeliveryMillis: 0 })).toBe(true)
        const { exit, after, raw } = yield* lateAppendScenario(
          { actors: { ...defaultActorOptions, fence } },
          "fenced"
        )
        expect(outcomeTag(after)).toBe("NotFound")
        expect(raw.filter((event) => event.op === "put")).toEqual([])
        expect(outcomeTag(exit)).toBe("LateWriteUndone")
        expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(/did not take effect/)
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "an atomic write whose transaction landed in a freed seq is undone on every key: none of it takes effect",
    () =>
      Effect.gen(function*() {
        const other = "/late/atomic-other"
        const { exit, after, raw, b } = yield* lateAppendScenario(
          { actors: { ...defaultActorOptions, fence }, atomicWrite: { ...defaultAtomicWriteOptions, fence } },
          "atomic",
          (store, item) =>
            store.atomicWrite([
              { key: item.key, condition: Condition.revision(item.revision), action: Action.put(bytes("from-A")) },
              { key: other, condition: Condition.notExists, action: Action.put(bytes("other-A")) }
            ])
        )
        expect(outcomeTag(after)).toBe("NotFound")
        expect(raw.filter((event) => event.op === "put")).toEqual([])
        expect(outcomeTag(exit)).toBe("LateWriteUndone")
        expect(outcomeTag(yield* Effect.exit(b.get(other)))).toBe("NotFound")
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "that landed right after its predecessor is kept: a late acknowledgement alone is no failure",
    () =>
      Effect.gen(function*() {
        const plain = makeClient()
        const location = yield* provisionTable(plain)
        let hold = false
        const { client } = faultyClient(1, () => "pass")
        client.middlewareStack.add(
          (next) => async (args) => {
            if (hold && isEventPut(location, (args as { input: unknown }).input)) {
              hold = false
              await new Promise((resolve) => setTimeout(resolve, 1500))
            }
            return next(args)
          },
          { step: "initialize", name: "holdAppend" }
        )
        const a = yield* openStore(location, { client, storeOptions: { actors: { ...defaultActorOptions, fence } } })
        yield* a.put({ key: "/late/kept", value: bytes("v1") })
        yield* Effect.sleep(50)
        hold = true
        const lease = yield* a.put({ key: "/late/kept", value: bytes("v2") }).pipe(
          Effect.provideService(Clock.Clock, frozenTimers(() => true, 10_000))
        )
        const now = yield* a.get("/late/kept")
        expect(now.revision).toBe(lease.revision)
        expect(new TextDecoder().decode(now.value)).toBe("v2")
        plain.destroy()
        client.destroy()
      }).pipe(Effect.scoped),
    30_000
  )
})
