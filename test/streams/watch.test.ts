import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber } from "effect"
import type { Store } from "../../src/programs/store/Store.ts"
import type { WatchOptions } from "../../src/programs/store/Watch.ts"
import { makeClient, openStore, provisionTable } from "../support/TestStore.ts"
import { changes, describeEvent, keyOf, startWatch } from "../support/Watching.ts"
import type { Watching } from "../support/Watching.ts"
import { eventually } from "./Harness.ts"

const encoder = new TextEncoder()
const bytes = (text: string) => encoder.encode(text)

/** A fresh table and a store on it, closed with the test. */
const freshStore = Effect.gen(function*() {
  const client = makeClient()
  const location = yield* provisionTable(client).pipe(Effect.orDie)
  return yield* openStore(location, { client })
})

/** A watch that has delivered `Init`. */
const liveWatch = (store: Store["Service"], options?: WatchOptions) =>
  Effect.gen(function*() {
    const watch = yield* startWatch(store, options)
    expect(yield* eventually(() => watch.watching.events.length > 0)).toBe(true)
    expect(watch.watching.events[0]).toEqual({ _tag: "Init" })
    return watch
  })

const hasChanges = (watching: Watching, n: number) => () => changes(watching.events).length >= n

describe("store.watch on DynamoDB Local", () => {
  it.live("Init first, then Put (decrypted, revision of the lease), Delete and Expire in per-key order", () =>
    Effect.gen(function*() {
      const store = yield* freshStore
      const { watching } = yield* liveWatch(store)
      const first = yield* store.put({ key: "/a", value: bytes("one") })
      const second = yield* store.put({ key: "/a", value: bytes("two") })
      yield* store.delete("/a")
      const expiring = yield* store.put({ key: "/b", value: bytes("brief"), expires: Date.now() + 300 })
      yield* Effect.sleep(500)
      expect((yield* Effect.flip(store.get("/b")))._tag).toBe("NotFound")
      expect((yield* Effect.flip(store.get("/b")))._tag).toBe("NotFound")
      expect(yield* eventually(() => changes(watching.events).some((e) => e._tag === "Expire"))).toBe(true)
      yield* Effect.sleep(700) // room for a (wrong) second Expire to show up

      const all = changes(watching.events)
      expect(all.filter((e) => keyOf(e) === "/a").map(describeEvent)).toEqual([
        "Put /a#1=one",
        "Put /a#2=two",
        "Delete /a#3"
      ])
      expect(all.filter((e) => keyOf(e) === "/b").map(describeEvent)).toEqual(["Put /b#1=brief", "Expire /b#2"])
      const [put1, put2, deleted] = all.filter((e) => keyOf(e) === "/a")
      expect(put1?._tag === "Put" && put1.item.revision).toBe(first.revision)
      expect(put2?._tag === "Put" && put2.item.revision).toBe(second.revision)
      expect(deleted?._tag === "Delete" && deleted.revision).toEqual(expect.any(String))
      expect(deleted?._tag === "Delete" && deleted.revision).not.toBe(second.revision)
      const putB = all.find((e) => e._tag === "Put" && e.item.key === "/b")
      expect(putB?._tag === "Put" && putB.item).toMatchObject({
        revision: expiring.revision,
        expires: expect.any(Number)
      })
      expect(watching.events.filter((e) => e._tag === "Init")).toHaveLength(1)
      expect(watching.error).toBeUndefined()
    }))

  it.live("prefixes filter the keys", () =>
    Effect.gen(function*() {
      const store = yield* freshStore
      const { watching } = yield* liveWatch(store, { prefixes: ["/users/", "/groups/"] })
      const all = yield* liveWatch(store)
      for (const key of ["/users/ann", "/nodes/n1", "/groups/g", "/usersx", "/users/bob"]) {
        yield* store.put({ key, value: bytes(key) })
      }
      expect(yield* eventually(() => hasChanges(all.watching, 5)() && hasChanges(watching, 3)())).toBe(true)
      yield* Effect.sleep(300) // room for a (wrong) key outside the prefixes to show up
      expect(changes(watching.events).map(keyOf)).toEqual(["/users/ann", "/groups/g", "/users/bob"])
    }))

  it.live("events written before the watch started are not delivered", () =>
    Effect.gen(function*() {
      const store = yield* freshStore
      yield* store.put({ key: "/before", value: bytes("old") })
      yield* store.put({ key: "/before", value: bytes("older") })
      const { watching } = yield* liveWatch(store)
      yield* store.put({ key: "/after", value: bytes("new") })
      expect(yield* eventually(hasChanges(watching, 1))).toBe(true)
      yield* Effect.sleep(300)
      expect(changes(watching.events).map(describeEvent)).toEqual(["Put /after#1=new"])
    }))

  it.live("two watches, one started after the other, get the same events", () =>
    Effect.gen(function*() {
      const store = yield* freshStore
      const one = yield* liveWatch(store)
      const two = yield* liveWatch(store)
      for (let i = 1; i <= 6; i++) yield* store.put({ key: `/k${i % 2}`, value: bytes(`v${i}`) })
      expect(yield* eventually(() => hasChanges(one.watching, 6)() && hasChanges(two.watching, 6)())).toBe(true)
      yield* Effect.sleep(300)
      expect(changes(one.watching.events).map(describeEvent)).toHaveLength(6)
      expect(changes(two.watching.events).map(describeEvent)).toEqual(changes(one.watching.events).map(describeEvent))
    }))

  // Regression: Watch.ts `shared ??= yield* startShared(layerScope)` suspends before assigning, so two
  // watches that start together each start a shared reader; both pump into every subscriber.
  it.live("two watches started concurrently get the same events, each exactly once", () =>
    Effect.gen(function*() {
      const store = yield* freshStore
      const [one, two] = yield* Effect.all([liveWatch(store), liveWatch(store)], { concurrency: "unbounded" })
      for (let i = 1; i <= 6; i++) yield* store.put({ key: `/k${i % 2}`, value: bytes(`v${i}`) })
      yield* eventually(() => hasChanges(one!.watching, 6)() && hasChanges(two!.watching, 6)(), 5_000)
      yield* Effect.sleep(500)
      const expected = [1, 2, 3].flatMap((n) => [`Put /k1#${n}=v${2 * n - 1}`, `Put /k0#${n}=v${2 * n}`])
      expect(changes(one!.watching.events).map(describeEvent)).toEqual(expected)
      expect(changes(two!.watching.events).map(describeEvent)).toEqual(expected)
    }))

  it.live("a consumer that does not read fails with WatcherOverflow once more than `capacity` events are pending", () =>
    Effect.gen(function*() {
      const store = yield* freshStore
      const gate = yield* Deferred.make<void>()
      const slow = yield* startWatch(store, { capacity: 5 }, gate)
      expect(yield* eventually(() => slow.watching.events.length > 0)).toBe(true)
      const barrier = yield* liveWatch(store)
      for (let i = 1; i <= 10; i++) yield* store.put({ key: "/hot", value: bytes(`v${i}`) })
      expect(yield* eventually(hasChanges(barrier.watching, 10))).toBe(true)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* eventually(() => slow.watching.done)).toBe(true)
      expect(slow.watching.error?._tag).toBe("WatcherOverflow")
      expect(slow.watching.error).toMatchObject({ capacity: 5 })
      // What it got before failing is a gap-free prefix, and at most the buffer plus the one in hand.
      const got = changes(slow.watching.events).map(describeEvent)
      expect(got.length).toBeLessThanOrEqual(6)
      expect(got).toEqual(changes(barrier.watching.events).map(describeEvent).slice(0, got.length))
      // The other watch is unaffected.
      yield* store.put({ key: "/hot", value: bytes("v11") })
      expect(yield* eventually(hasChanges(barrier.watching, 11))).toBe(true)
      expect(barrier.watching.error).toBeUndefined()
    }))

  it.live("interrupting the consumer closes the watch promptly; other watches carry on", () =>
    Effect.gen(function*() {
      const store = yield* freshStore
      const one = yield* liveWatch(store)
      const two = yield* liveWatch(store)
      yield* store.put({ key: "/x", value: bytes("1") })
      expect(yield* eventually(hasChanges(one.watching, 1))).toBe(true)
      const [took] = yield* Effect.timed(Fiber.interrupt(one.fiber))
      expect(Duration.toMillis(took)).toBeLessThan(1_000)
      expect(one.watching.done).toBe(true)
      // A resumed watch runs its own reader; closing it is prompt too.
      const position = changes(one.watching.events)[0]!.position
      const resumed = yield* liveWatch(store, { resumeFrom: position })
      const [tookResumed] = yield* Effect.timed(Fiber.interrupt(resumed.fiber))
      expect(Duration.toMillis(tookResumed)).toBeLessThan(1_000)
      yield* store.put({ key: "/x", value: bytes("2") })
      expect(yield* eventually(hasChanges(two.watching, 2))).toBe(true)
      expect(changes(one.watching.events)).toHaveLength(1)
    }))

  it.live("resumeFrom the position of the 2nd event delivers the rest with no gap", () =>
    Effect.gen(function*() {
      const store = yield* freshStore
      const first = yield* liveWatch(store)
      for (let i = 1; i <= 5; i++) yield* store.put({ key: `/r${i % 2}`, value: bytes(`v${i}`) })
      yield* store.delete("/r1")
      expect(yield* eventually(hasChanges(first.watching, 6))).toBe(true)
      const seen = changes(first.watching.events)
      const resumed = yield* liveWatch(store, { resumeFrom: seen[1]!.position })
      yield* store.put({ key: "/r9", value: bytes("later") })
      expect(yield* eventually(() => changes(resumed.watching.events).some((e) => keyOf(e) === "/r9"))).toBe(true)
      const got = new Set(changes(resumed.watching.events).map(describeEvent))
      for (const event of seen.slice(2)) expect(got.has(describeEvent(event))).toBe(true)
      expect(got.has("Put /r9#1=later")).toBe(true)
      expect(got.has(describeEvent(seen[0]!))).toBe(false) // it starts after the position, not from the beginning
      // Per-key order holds in the resumed feed too.
      for (const key of ["/r0", "/r1"]) {
        const seqs = changes(resumed.watching.events).filter((e) => keyOf(e) === key).map((e) => e.seq)
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
      }
    }))

  it.live("200 writes over 10 keys arrive with dense per-key seqs: no gaps, no duplicates", () =>
    Effect.gen(function*() {
      const store = yield* freshStore
      const { watching } = yield* liveWatch(store)
      yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        (i) => store.put({ key: `/dense/${i % 10}`, value: bytes(`v${i}`) }),
        { concurrency: 20, discard: true }
      )
      expect(yield* eventually(hasChanges(watching, 200), 30_000)).toBe(true)
      yield* Effect.sleep(500)
      const all = changes(watching.events)
      expect(all).toHaveLength(200)
      for (let k = 0; k < 10; k++) {
        const seqs = all.filter((e) => keyOf(e) === `/dense/${k}`).map((e) => e.seq)
        expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      }
      expect(watching.error).toBeUndefined()
    }))
})
