/**
 * Rollback detection: someone who can write the table deletes a key's newest event item, and the key reads as its
 * previous, validly encrypted value (or, for a deleted key, comes back). Every check of the value passes, because
 * the older event is genuine; the worker, which saw the newer event, raises the alarm within one cycle. Removals
 * that compaction makes (superseded events moved to history, tombstones buried in graves) raise none.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { deleteRawEvent } from "../support/RawTable.ts"
import { openStore } from "../support/TestStore.ts"
import type { Env } from "./support.ts"
import { bytes, eventually, freshEnv, liveEvents, startWorker, text } from "./support.ts"

/** Deletes one event item by hand, as a principal with write access to the table could. */
const deleteEventItem = (env: Env, key: string, seq: number) =>
  Effect.promise(() => deleteRawEvent(env.client, env.location, key, seq))

describe("rollback detection", () => {
  it.live("deleting a key's newest event raises the alarm within one worker cycle", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("worker-rollback")
      const store = yield* openStore(env.location, { client: env.client })
      // Events stay live (nothing settles during the test): the previous value is there to roll back to.
      const worker = yield* startWorker(env, { group: "rollback", settleMillis: 600_000 })
      for (const value of ["v1", "v2", "v3"]) yield* store.put({ key: "/r/a", value: bytes(value) })
      yield* eventually(
        "the worker applied the three events",
        Effect.map(worker.status, (status) => expect(status.eventsApplied).toBeGreaterThanOrEqual(3))
      )
      expect((yield* worker.status).tampering).toEqual([])

      yield* deleteEventItem(env, "/r/a", 3)
      // The table alone cannot tell: the key now reads as its older value.
      const reader = yield* openStore(env.location, { client: env.client })
      expect(text((yield* reader.get("/r/a")).value)).toBe("v2")

      yield* eventually(
        "the worker reports the rollback",
        Effect.map(worker.status, (status) =>
          expect(status.tampering.map((found) => ({ ...found, detectedAt: 0 }))).toEqual([
            { kind: "rollback", key: "/r/a", seq: 3, newestSeq: 2, detectedAt: 0 }
          ])),
        5_000
      )
    }))

  it.live("deleting a key's tombstone (bringing a deleted key back) raises the alarm too", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("worker-rollback-undelete")
      const store = yield* openStore(env.location, { client: env.client })
      const worker = yield* startWorker(env, { group: "undelete", settleMillis: 600_000 })
      yield* store.put({ key: "/r/gone", value: bytes("secret") })
      yield* store.delete("/r/gone")
      yield* eventually(
        "the worker applied both events",
        Effect.map(worker.status, (status) => expect(status.eventsApplied).toBeGreaterThanOrEqual(2))
      )
      yield* deleteEventItem(env, "/r/gone", 2)
      yield* eventually(
        "the worker reports the rollback",
        Effect.map(
          worker.status,
          (status) =>
            expect(status.tampering.map((found) => ({ ...found, detectedAt: 0 }))).toEqual([
              { kind: "rollback", key: "/r/gone", seq: 2, newestSeq: 1, detectedAt: 0 }
            ])
        ),
        5_000
      )
    }))

  it.live("compaction's removals (history, graves) raise no alarm", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("worker-rollback-compaction")
      const store = yield* openStore(env.location, { client: env.client })
      const worker = yield* startWorker(env, { group: "compaction" })
      for (const key of ["/c/a", "/c/b", "/c/c"]) {
        for (const value of ["1", "2", "3"]) yield* store.put({ key, value: bytes(value) })
      }
      yield* store.delete("/c/b")
      yield* store.delete("/c/c")
      yield* store.put({ key: "/c/c", value: bytes("again") })
      // Settled at once: compaction leaves one live event for /c/a and /c/c, and buries /c/b's tombstone.
      yield* eventually(
        "compaction finished",
        Effect.map(liveEvents(env), (events) =>
          expect(events.map(({ key, seq }) => `${key}@${seq}`).sort()).toEqual(["/c/a@3", "/c/c@5"]))
      )
      // A cycle more for the removals' stream records to be read.
      yield* Effect.sleep(1000)
      expect((yield* worker.status).tampering).toEqual([])
    }))
})
