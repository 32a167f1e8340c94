/**
 * The worker's expiry projection records expiries with nobody reading: an
 * expired key gets exactly one `expire` event (raw count in the table), which
 * watchers and projections then see, however many workers race to record it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import type { WatchEvent } from "../../src/programs/store/Watch.ts"
import { openStore } from "../support/TestStore.ts"
import { allEvents, bytes, eventually, freshEnv, recorder, startWorker } from "./support.ts"

const opsOf = (events: ReadonlyArray<{ key: string; seq: number; op: string }>, key: string) =>
  events.filter((event) => event.key === key).sort((a, b) => a.seq - b.seq).map((event) => event.op)

describe("expiry", () => {
  it.live(
    "an expiring key nobody reads gets exactly one expire event, seen by a watcher and by a projection",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-expiry")
        const store = yield* openStore(env.location, { client: env.client })
        const seen = recorder("expiry-watch", ["/e/"])
        yield* startWorker(env, { group: "expiry", projections: [seen.projection] })
        const key = "/e/session"
        const other = "/e/forever"

        const watched: Array<WatchEvent> = []
        const watcher = yield* store.watch({ prefixes: ["/e/"] }).pipe(
          Stream.runForEach((event) => Effect.sync(() => void watched.push(event))),
          Effect.forkChild
        )
        yield* eventually("the watch is live", Effect.sync(() => expect(watched[0]?._tag).toBe("Init")), 10_000, 20)

        const expires = Date.now() + 1500
        yield* store.put({ key, value: bytes("token"), expires })
        yield* store.put({ key: other, value: bytes("stays") })

        // Nobody calls get: the worker must record the expiry by itself.
        yield* eventually(
          "an expire event in the table",
          Effect.gen(function*() {
            expect(opsOf(yield* allEvents(env), key)).toEqual(["put", "expire"])
          }),
          15_000
        )
        const recordedAt = Date.now()
        expect(recordedAt).toBeGreaterThanOrEqual(expires)
        expect(recordedAt - expires).toBeLessThan(5_000)

        yield* eventually(
          "watcher and projection saw the expiry",
          Effect.sync(() => {
            expect(
              watched.filter((event) => event._tag === "Expire").map((event) =>
                "key" in event && [event.key, event.seq]
              )
            ).toEqual([[key, 2]])
            expect(seen.log.filter(({ event }) => event.key === key).map(({ event }) => [event.seq, event.op])).toEqual(
              [[1, "put"], [2, "expire"]]
            )
          }),
          10_000
        )
        // And it stays at one: nothing appends a second expiry afterwards.
        yield* Effect.sleep(1000)
        const events = yield* allEvents(env)
        expect(opsOf(events, key)).toEqual(["put", "expire"])
        expect(opsOf(events, other)).toEqual(["put"])
        expect(watched.filter((event) => event._tag === "Expire")).toHaveLength(1)
        expect(
          watched.filter((event) => event._tag === "Put").map((event) => event._tag === "Put" && event.item.key).sort()
        ).toEqual([other, key].sort())
        expect((yield* Effect.flip(store.get(key)))._tag).toBe("NotFound")
        expect((yield* store.get(other)).key).toBe(other)
        yield* Fiber.interrupt(watcher)
      }),
    60_000
  )

  it.live(
    "two workers (and a reader) meeting the same expiries still append exactly one expire event per key",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-expiry-two")
        const store = yield* openStore(env.location, { client: env.client })
        const keys = Array.from({ length: 10 }, (_, i) => `/e2/k${i}`)
        const expires = Date.now() + 2500
        // Written before the workers start: both schedule every key when they rebuild, so both fire at once.
        for (const key of keys) yield* store.put({ key, value: bytes(key), expires })
        const first = recorder("expiry-a", ["/e2/"])
        const second = recorder("expiry-b", ["/e2/"])
        // Different groups: each worker also reads every record, and schedules every key from the stream too.
        yield* startWorker(env, { group: "expiry-a", projections: [first.projection] })
        yield* startWorker(env, { group: "expiry-b", projections: [second.projection] })
        // A plain reader racing the workers at the expiry instant.
        const reader = yield* Effect.gen(function*() {
          yield* Effect.sleep(Math.max(0, expires - Date.now()))
          yield* Effect.forEach(keys, (key) => Effect.ignore(store.get(key)), { concurrency: "unbounded" })
        }).pipe(Effect.forkChild)

        yield* eventually(
          "every key has its expire event",
          Effect.gen(function*() {
            const events = yield* allEvents(env)
            for (const key of keys) expect(opsOf(events, key), key).toContain("expire")
          }),
          20_000
        )
        yield* Fiber.join(reader)
        yield* Effect.sleep(1500)
        const events = yield* allEvents(env)
        for (const key of keys) expect(opsOf(events, key), key).toEqual(["put", "expire"])
        // Both groups' projections are given the one expire event of every key.
        yield* eventually(
          "both groups saw every expiry",
          Effect.sync(() => {
            for (const log of [first.log, second.log]) {
              const expired = log.filter(({ event }) => event.op === "expire").map(({ event }) =>
                `${event.key}@${event.seq}`
              )
              expect(expired.sort()).toEqual(keys.map((key) => `${key}@2`).sort())
            }
          }),
          10_000
        )
      }),
    60_000
  )
})
