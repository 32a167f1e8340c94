/**
 * The contract suite's memory backend: one in-memory store per test, made by
 * the test's first `open` in the test's scope (so its expiry timer runs under
 * the test's clock: `TestClock` under `it.effect`), shared by every instance
 * the test opens (one storage, as several processes share a table), and
 * inspected through its `MemoryInspector`. Needs no DynamoDB.
 */
import { beforeEach } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as ValueChunks from "../../../src/infra/ValueChunks.ts"
import * as MemoryStore from "../../../src/programs/store/MemoryStore.ts"
import type { InspectableStore } from "../../../src/programs/store/MemoryStore.ts"
import type { ContractBackend } from "./suite/Backend.ts"

/** The in-memory store; `TestClock.adjust` moves its clock and fires its expiry timer. */
export const memoryBackend: ContractBackend = {
  name: "memory",
  expiresWhenDue: true,
  advance: (millis) => TestClock.adjust(millis),
  storage: () => {
    let current: InspectableStore | undefined
    beforeEach(() => {
      current = undefined
    })
    return {
      open: () =>
        current !== undefined
          ? Effect.succeed(current.store)
          : Effect.map(MemoryStore.makeWithInspector(), (made) => {
            current = made
            return made.store
          }),
      openWithAcks: () =>
        current !== undefined
          ? Effect.succeed({ store: current.store, acks: current.acks })
          : Effect.map(MemoryStore.makeWithInspector(), (made) => {
            current = made
            return { store: made.store, acks: made.acks }
          }),
      // The memory store does no I/O: there are no requests to record.
      openRecording: undefined,
      ops: (key) => (current === undefined ? Effect.succeed([]) : current.inspector.ops(key)),
      snapshot: () => (current === undefined ? Effect.succeed("") : current.inspector.snapshot),
      maxValueBytes: (key) => MemoryStore.maxValueBytes(key),
      wholeValueBytes: (key) => ValueChunks.largestWholeValue({ table: "memory", namespace: "default" }, key)
    }
  }
}
