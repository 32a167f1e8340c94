/**
 * The model-based test's environment over the in-memory store: one TestClock
 * runtime per file and a fresh store per property run, whose two "instances"
 * share its state (as two processes share a table). What has no meaning in
 * memory is mapped to what is true there: a restart leaves nothing cached to
 * lose (the instance is the same), compaction has nothing to move (it is a
 * no-op that looked at 0 keys), and a key's live seqs are all its events
 * (nothing is ever buried, so there are no graves).
 */
import { Clock, Effect, Exit, ManagedRuntime, Result, Scope } from "effect"
import { TestClock } from "effect/testing"
import { randomUUID } from "node:crypto"
import * as MemoryStore from "../../../src/programs/store/MemoryStore.ts"
import { epoch } from "./harness.ts"
import type { PropertyEnvironment, Run, StoreService } from "./harness.ts"

/** Runs of the model test on fresh in-memory stores, all under one TestClock. */
export const makeMemoryEnvironment = (): PropertyEnvironment => {
  const runtime = ManagedRuntime.make(TestClock.layer({ warningDelay: "1 hour" }))
  let started = false
  const openRun = async (): Promise<Run> => {
    if (!started) {
      started = true
      await runtime.runPromise(TestClock.setTime(epoch))
    }
    const scope = Scope.makeUnsafe()
    // Built in the runtime, so the store's expiry timer sleeps on the file's TestClock.
    const { inspector, store } = await runtime.runPromise(MemoryStore.makeWithInspector().pipe(Scope.provide(scope)))
    const stores: [StoreService, StoreService] = [store, store]
    const ops = (key: string) => runtime.runPromise(inspector.ops(key))
    return {
      location: { table: "memory", namespace: `run-${randomUUID()}` },
      stores,
      exec: (effect) => runtime.runPromise(Effect.result(effect)),
      now: () => runtime.runPromise(Clock.currentTimeMillis),
      advance: (millis) => runtime.runPromise(TestClock.adjust(millis)),
      restart: async (via) => {
        stores[via] = store
      },
      compact: async () => Result.succeed(0),
      seqs: async (key) => ({
        live: (await runtime.runPromise(inspector.events(key))).map((event) => event.seq),
        grave: undefined
      }),
      expireCount: async (key) => (await ops(key)).filter((op) => op === "expire").length,
      close: () => runtime.runPromise(Scope.close(scope, Exit.void))
    }
  }
  return { openRun, dispose: () => runtime.dispose() }
}
