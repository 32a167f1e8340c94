/**
 * Unit tests of the sessions module on the in-memory store of `dynastate/testing`: no Java, no DynamoDB, and
 * `TestClock` decides when sessions expire.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryStore } from "dynastate/testing"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as Sessions from "./Sessions.ts"

describe("sessions", () => {
  it.effect("a session expires after idleMillis without use", () =>
    Effect.gen(function*() {
      const id = yield* Sessions.open("alice", ["read"])
      yield* TestClock.adjust(Sessions.idleMillis - 1)
      expect((yield* Sessions.touch(id)).user).toBe("alice")
      yield* TestClock.adjust(Sessions.idleMillis)
      const error = yield* Effect.flip(Sessions.touch(id))
      expect(error._tag).toBe("NotFound")
    }).pipe(Effect.provide(MemoryStore.layer())))

  it.effect("touching a session keeps it alive", () =>
    Effect.gen(function*() {
      const id = yield* Sessions.open("bob", ["read", "write"])
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust(Sessions.idleMillis - 1000)
        yield* Sessions.touch(id)
      }
      expect((yield* Sessions.ofUser("bob")).map((session) => session.key)).toEqual([id])
    }).pipe(Effect.provide(MemoryStore.layer())))

  it.effect("a revoked session is gone, the user's others stay", () =>
    Effect.gen(function*() {
      const first = yield* Sessions.open("carol", ["read"])
      const second = yield* Sessions.open("carol", ["admin"])
      yield* Sessions.revoke(first)
      expect((yield* Effect.flip(Sessions.touch(first)))._tag).toBe("NotFound")
      expect((yield* Sessions.ofUser("carol")).map((session) => session.key)).toEqual([second])
    }).pipe(Effect.provide(MemoryStore.layer())))
})
