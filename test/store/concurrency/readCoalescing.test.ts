/**
 * Concurrent gets of one key share reads, and only reads sent after they were invoked: a get never answers from
 * a read that was already on its way (it could miss a write acknowledged in between), and a get whose read
 * another caller started is not lost when that caller is interrupted.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import { bytes, text } from "./helpers.ts"

/** A client counting its Query requests, whose Query answers can be held back until released. */
const gatedClient = () => {
  const client: DynamoDBClient = makeClient()
  const state = { queries: 0, hold: undefined as Promise<void> | undefined, held: 0 }
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== "QueryCommand") return next(args)
      state.queries++
      const hold = state.hold
      const output = await next(args)
      if (hold !== undefined) {
        state.held++
        await hold
      }
      return output
    },
    { step: "initialize", name: "gateQueries" }
  )
  /** Holds the answers of the Queries sent from now on until the returned release is called. */
  const holdAnswers = () => {
    let release: () => void = () => undefined
    state.hold = new Promise<void>((resolve) => {
      release = resolve
    })
    return () => {
      state.hold = undefined
      release()
    }
  }
  return { client, state, holdAnswers }
}

const waitUntil = (condition: () => boolean) =>
  Effect.gen(function*() {
    while (!condition()) yield* Effect.sleep(5)
  })

describe("read coalescing", () => {
  it.live("16 concurrent gets of one key send at most 2 reads and all see the value", () =>
    Effect.gen(function*() {
      const { client, state } = gatedClient()
      const location = yield* provisionTable(client)
      const store = yield* openStore(location, { client })
      yield* store.put({ key: "/hot", value: bytes("v1") })
      yield* store.put({ key: "/cold", value: bytes("c1") })
      const before = state.queries
      const values = yield* Effect.forEach(
        Array.from({ length: 16 }, () => "/hot"),
        (key) => Effect.map(store.get(key), (item) => text(item.value)),
        { concurrency: "unbounded" }
      )
      expect(values).toEqual(Array.from({ length: 16 }, () => "v1"))
      expect(state.queries - before).toBeGreaterThanOrEqual(1)
      expect(state.queries - before).toBeLessThanOrEqual(2)
      // Another key has reads of its own.
      const middle = state.queries
      const [hot, cold] = yield* Effect.all([store.get("/hot"), store.get("/cold")], { concurrency: "unbounded" })
      expect([text(hot.value), text(cold.value)]).toEqual(["v1", "c1"])
      expect(state.queries - middle).toBe(2)
    }))

  it.live("a get invoked while a read is in flight answers from a later read, which sees a write acknowledged since", () =>
    Effect.gen(function*() {
      const { client, holdAnswers, state } = gatedClient()
      const location = yield* provisionTable(client)
      const store = yield* openStore(location, { client })
      yield* store.put({ key: "/k", value: bytes("old") })
      const release = holdAnswers()
      const early = yield* Effect.forkChild(store.get("/k"))
      yield* waitUntil(() => state.held === 1)
      // The early read has its answer ("old") and is held; the write lands after it.
      yield* store.put({ key: "/k", value: bytes("new") })
      const late = yield* Effect.forkChild(store.get("/k"))
      yield* Effect.sleep(20)
      release()
      expect(text((yield* Fiber.join(early)).value)).toBe("old")
      expect(text((yield* Fiber.join(late)).value)).toBe("new")
    }))

  it.live("gets waiting for a read still get their answer when the caller that started reading is interrupted", () =>
    Effect.gen(function*() {
      const { client, holdAnswers, state } = gatedClient()
      const location = yield* provisionTable(client)
      const store = yield* openStore(location, { client })
      yield* store.put({ key: "/k", value: bytes("v") })
      const release = holdAnswers()
      const first = yield* Effect.forkChild(store.get("/k"))
      yield* waitUntil(() => state.held === 1)
      const waiting = yield* Deferred.make<string>()
      const second = yield* Effect.forkChild(
        Effect.map(store.get("/k"), (item) => text(item.value)).pipe(
          Effect.tap((value) => Deferred.succeed(waiting, value))
        )
      )
      yield* Effect.sleep(20)
      yield* Fiber.interrupt(first)
      release()
      expect(yield* Fiber.join(second)).toBe("v")
      expect(yield* Deferred.await(waiting)).toBe("v")
    }))
})
