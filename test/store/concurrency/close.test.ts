/**
 * Closing a store answers every command still queued or running, and refuses
 * new ones, instead of leaving callers waiting forever.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"

const bytes = (text: string) => new TextEncoder().encode(text)

describe("closing a store", () => {
  it.live("fails queued commands and later calls with StorageFailure, and interrupts none forever", () =>
    Effect.gen(function*() {
      const location = yield* provisionTable(makeClient())
      const scope = yield* Scope.make()
      const store = yield* openStore(location).pipe(Scope.provide(scope))
      yield* store.put({ key: "/close/k", value: bytes("0") })
      // Fifty commands on one key queue up behind each other in its actor.
      const calls = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i),
          (i) => Effect.exit(store.put({ key: "/close/k", value: bytes(String(i)) })),
          {
            concurrency: "unbounded"
          }
        )
      )
      yield* Effect.sleep("20 millis")
      yield* Scope.close(scope, Exit.void)
      const exits = yield* Fiber.join(calls).pipe(Effect.timeout("10 seconds"))
      expect(exits).toHaveLength(50)
      const failures = exits.filter(Exit.isFailure)
      for (const exit of failures) expect(JSON.stringify(exit.cause)).toMatch(/StorageFailure|Interrupt/)
      const after = yield* Effect.flip(store.put({ key: "/close/k", value: bytes("late") })).pipe(
        Effect.timeout("5 seconds")
      )
      expect(after._tag).toBe("StorageFailure")
      expect(after.message).toContain("closed")
    }))
})
