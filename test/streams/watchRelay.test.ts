import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Fiber, Metric, Stream } from "effect"
import type { WatchEvent, WatchPosition } from "../../src/programs/store/Watch.ts"
import * as Relay from "../../src/programs/worker/WatchRelay.ts"
import { freePort } from "../support/FreePort.ts"
import type { TestTable } from "../support/TestStore.ts"
import { timersAdjusted } from "../support/TimerClock.ts"
import { changes, describeEvent, keyOf, startWatch } from "../support/Watching.ts"
import { eventually } from "./Harness.ts"
import { eventuallyEffect, freshTable, openPlainStore, quiet, relayedStore, startRelay } from "./RelayHarness.ts"

const bytes = (text: string) => new TextEncoder().encode(text)

/** Each key's changes as `Put k#seq` lines, in the order delivered. */
const perKey = (events: ReadonlyArray<WatchEvent>) => {
  const keys = new Map<string, Array<string>>()
  for (const event of changes(events)) {
    const lines = keys.get(keyOf(event)) ?? []
    lines.push(describeEvent(event))
    keys.set(keyOf(event), lines)
  }
  return keys
}

describe("watches served by the worker's relay", () => {
  it.live("Init, then Put (decrypted by the watching process), Delete and Expire in per-key order, with no reading of its own", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const port = yield* freePort
      const { relay } = yield* startRelay(location, port)
      const { counts, store } = yield* relayedStore(location, port)
      const { watching } = yield* startWatch(store)
      expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
      expect(watching.events[0]).toEqual({ _tag: "Init" })
      expect((yield* relay.status).subscribers).toBe(1)

      yield* store.put({ key: "/a", value: bytes("one") })
      yield* store.put({ key: "/a", value: bytes("two") })
      yield* store.delete("/a")
      yield* store.put({ key: "/b", value: bytes("brief"), expires: Date.now() + 300 })
      yield* Effect.sleep(500)
      expect((yield* Effect.flip(store.get("/b")))._tag).toBe("NotFound")
      expect(yield* eventually(() => changes(watching.events).some((e) => e._tag === "Expire"))).toBe(true)
      yield* Effect.sleep(500)

      const keys = perKey(watching.events)
      expect(keys.get("/a")).toEqual(["Put /a#1=one", "Put /a#2=two", "Delete /a#3"])
      expect(keys.get("/b")).toEqual(["Put /b#1=brief", "Expire /b#2"])
      expect(watching.error).toBeUndefined()
      expect(counts.getRecords).toBe(0)
    }))

  it.live("without a worker the watch reads the stream itself, goes over to the relay when it comes, back when it goes, and loses or repeats nothing", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const port = yield* freePort
      const { counts, store } = yield* relayedStore(location, port)
      const { watching } = yield* startWatch(store)
      expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
      expect(watching.events[0]).toEqual({ _tag: "Init" })

      // Writes across every switch, from another store (they reach the watch only through the stream).
      const writer = yield* openPlainStore(location)
      const written = new Map<string, number>()
      const writing = yield* Effect.forkScoped(Effect.gen(function*() {
        for (let i = 0;; i++) {
          const key = `/k${i % 5}`
          const seq = (written.get(key) ?? 0) + 1
          // Written and recorded together: stopping the writer between the two would hide a delivered event.
          yield* Effect.uninterruptible(
            writer.put({ key, value: bytes(`v${seq}`) }).pipe(Effect.andThen(Effect.sync(() => written.set(key, seq))))
          )
          yield* Effect.sleep(40)
        }
      }))

      expect(yield* eventually(() => changes(watching.events).length >= 5)).toBe(true)
      expect(counts.getRecords).toBeGreaterThan(0)

      const first = yield* startRelay(location, port)
      expect(yield* eventually(() => Effect.runSync(first.relay.status).subscribers === 1, 10_000)).toBe(true)
      expect(yield* eventuallyEffect(quiet(counts), 10_000)).toBe(true)

      yield* first.stop
      const beforeFallback = counts.getRecords
      expect(yield* eventually(() => counts.getRecords > beforeFallback + 3, 10_000)).toBe(true)

      const second = yield* startRelay(location, port)
      expect(yield* eventually(() => Effect.runSync(second.relay.status).subscribers === 1, 10_000)).toBe(true)
      expect(yield* eventuallyEffect(quiet(counts), 10_000)).toBe(true)

      yield* Fiber.interrupt(writing)
      const total = [...written.values()].reduce((sum, n) => sum + n, 0)
      expect(yield* eventually(() => changes(watching.events).length >= total, 10_000)).toBe(true)
      yield* Effect.sleep(700) // room for a (wrong) repeat to show up
      expect(watching.error).toBeUndefined()
      const keys = perKey(watching.events)
      for (const [key, n] of written) {
        expect(keys.get(key)).toEqual(Array.from({ length: n }, (_, i) => `Put ${key}#${i + 1}=v${i + 1}`))
      }
      expect(changes(watching.events)).toHaveLength(total)
    }))

  it.live("a watch that began on its own reading of a quiet stream goes over to the relay too", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const port = yield* freePort
      const writer = yield* openPlainStore(location)
      // Records before the watch: the relay, starting from the shard's first record, reads past them.
      for (let i = 1; i <= 3; i++) yield* writer.put({ key: "/q", value: bytes(`v${i}`) })
      const { counts, store } = yield* relayedStore(location, port)
      const { watching } = yield* startWatch(store)
      expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
      const { relay } = yield* startRelay(location, port)
      expect(yield* eventually(() => Effect.runSync(relay.status).subscribers === 1, 10_000)).toBe(true)
      expect(yield* eventuallyEffect(quiet(counts), 10_000)).toBe(true)
      yield* writer.put({ key: "/q", value: bytes("v4") })
      expect(yield* eventually(() => changes(watching.events).length >= 1, 10_000)).toBe(true)
      yield* Effect.sleep(500)
      expect(changes(watching.events).map(describeEvent)).toEqual(["Put /q#4=v4"])
    }))

  it.live("goes over to the relay on a quiet stream even when its timers fire early", () =>
    Effect.gen(function*() {
      // Timers a few milliseconds early against the clock's time, as a live timer can be: the check made once the
      // quiet period has passed must not find it a hair short and give up.
      const early = timersAdjusted((duration) => Duration.millis(Math.max(0, Duration.toMillis(duration) - 5)))
      const location = yield* freshTable
      const port = yield* freePort
      const writer = yield* openPlainStore(location)
      yield* writer.put({ key: "/q", value: bytes("v1") })
      const { counts, store } = yield* relayedStore(location, port)
      const { watching } = yield* startWatch(store).pipe(Effect.provideService(Clock.Clock, early))
      expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
      const { relay } = yield* startRelay(location, port)
      expect(yield* eventually(() => Effect.runSync(relay.status).subscribers === 1, 10_000)).toBe(true)
      expect(yield* eventuallyEffect(quiet(counts), 10_000)).toBe(true)
    }))

  it.live("a subscriber that falls further behind than the relay's buffer is dropped with RelayRefused", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const port = yield* freePort
      const { relay } = yield* startRelay(location, port, 2)
      const gate = yield* Deferred.make<void>()
      const seen: Array<string> = []
      const ended = yield* relay.subscribe.pipe(
        Stream.runForEach((message) =>
          Effect.sync(() => seen.push(message._tag)).pipe(
            Effect.andThen(message._tag === "Ready" ? Deferred.await(gate) : Effect.void)
          )
        ),
        Effect.flip,
        Effect.forkScoped
      )
      expect(yield* eventually(() => seen.length === 1)).toBe(true)
      const writer = yield* openPlainStore(location)
      for (let i = 1; i <= 6; i++) {
        yield* writer.put({ key: "/slow", value: bytes(`v${i}`) })
        yield* Effect.sleep(300) // one relayed batch each
      }
      expect((yield* relay.status).subscribers).toBe(0)
      expect((yield* Metric.value(Relay.droppedMetric)).count).toBeGreaterThanOrEqual(1)
      expect((yield* Metric.value(Relay.subscribersMetric)).value).toBe(0)
      yield* Deferred.succeed(gate, undefined)
      const error = yield* Fiber.join(ended)
      expect(error._tag).toBe("RelayRefused")
      expect(error.reason).toContain("fell more than 2 batches behind")
      // What was queued before the drop is still delivered, then the failure.
      expect(seen).toEqual(["Ready", "Records", "Records"])
    }))

  it.live("a worker serving another namespace refuses the watch, which reads the stream itself", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const port = yield* freePort
      const { relay } = yield* startRelay(location, port)
      const other: TestTable = { ...location, namespace: "other" }
      const { counts, store } = yield* relayedStore(other, port)
      const { watching } = yield* startWatch(store)
      expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
      yield* (yield* openPlainStore(other)).put({ key: "/n", value: bytes("mine") })
      expect(yield* eventually(() => changes(watching.events).length >= 1, 10_000)).toBe(true)
      expect(changes(watching.events).map(describeEvent)).toEqual(["Put /n#1=mine"])
      expect(counts.getRecords).toBeGreaterThan(0)
      expect((yield* relay.status).subscribers).toBe(0)
    }))

  it.live("a watch resumed from a position catches up by itself, then goes over to the relay without a gap", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const port = yield* freePort
      const { relay } = yield* startRelay(location, port)
      const { counts, store } = yield* relayedStore(location, port)
      const first = yield* startWatch(store)
      expect(yield* eventually(() => first.watching.events.length > 0)).toBe(true)
      for (let i = 1; i <= 3; i++) yield* store.put({ key: "/r", value: bytes(`v${i}`) })
      expect(yield* eventually(() => changes(first.watching.events).length >= 3)).toBe(true)
      const position: WatchPosition = changes(first.watching.events)[2]!.position
      yield* Fiber.interrupt(first.fiber)
      expect(yield* eventually(() => Effect.runSync(relay.status).subscribers === 0)).toBe(true)

      // Written while nobody watched: the resumed watch must bring them, from its own reading.
      const writer = yield* openPlainStore(location)
      for (let i = 4; i <= 6; i++) yield* writer.put({ key: "/r", value: bytes(`v${i}`) })
      const resumed = yield* startWatch(store, { resumeFrom: position })
      expect(yield* eventually(() => changes(resumed.watching.events).length >= 3, 10_000)).toBe(true)
      expect(yield* eventually(() => Effect.runSync(relay.status).subscribers === 1, 10_000)).toBe(true)
      expect(yield* eventuallyEffect(quiet(counts), 10_000)).toBe(true)
      for (let i = 7; i <= 8; i++) yield* writer.put({ key: "/r", value: bytes(`v${i}`) })
      expect(yield* eventually(() => changes(resumed.watching.events).length >= 5, 10_000)).toBe(true)
      yield* Effect.sleep(500)
      expect(perKey(resumed.watching.events).get("/r")).toEqual(
        Array.from({ length: 5 }, (_, i) => `Put /r#${i + 4}=v${i + 4}`)
      )
    }))
})
