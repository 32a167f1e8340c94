/**
 * What only the in-memory store has, beyond the shared contract
 * (test/store/contract/memory.test.ts): expiry driven by `TestClock` with
 * nobody reading (its timer), watches with positions in its global log,
 * shredding by scope, history and getAt over every event, and independent
 * stores per layer build. Needs no DynamoDB.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Redacted, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { NotFound, Shredded } from "../../../src/domain/Errors.ts"
import * as Key from "../../../src/domain/Key.ts"
import { scopeByDepth } from "../../../src/infra/crypto/DataKeys.ts"
import * as RawAesKeyring from "../../../src/infra/crypto/RawAesKeyring.ts"
import * as MemoryStore from "../../../src/programs/store/MemoryStore.ts"
import { Store } from "../../../src/programs/store/Store.ts"
import type { WatchEvent, WatchOptions } from "../../../src/programs/store/Watch.ts"
import { startWatch } from "../../support/Watching.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (text: string) => encoder.encode(text)

type Changed = Exclude<WatchEvent, { _tag: "Init" }>
type S = Store["Service"]

const changes = (events: ReadonlyArray<WatchEvent>) => events.filter((e): e is Changed => e._tag !== "Init")
const show = (event: Changed) =>
  event._tag === "Put"
    ? `Put ${event.item.key}#${event.seq}=${decoder.decode(event.item.value)}`
    : `${event._tag} ${event.key}#${event.seq}`

/** Lets other fibers run until `done` holds (at most 200 yields; no clock involved). */
const eventually = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200 && !done(); i++) yield* Effect.yieldNow
    return done()
  })

/** A watch running in the test's scope that has delivered `Init`; `gate` (if given) holds every change until it opens. */
const watchInto = (store: S, options?: WatchOptions, gate?: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const { watching, fiber } = yield* startWatch(store, options, gate)
    expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
    expect(watching.events[0]).toEqual({ _tag: "Init" })
    return { watching, fiber }
  })

describe("expiry under TestClock", () => {
  it.effect("a watcher hears Expire once the clock passes the expiry, with nobody reading; exactly one expire event", () =>
    Effect.gen(function*() {
      const { inspector, store } = yield* MemoryStore.makeWithInspector()
      const { watching } = yield* watchInto(store)
      const now = yield* Clock.currentTimeMillis
      const lease = yield* store.put({ key: "/s", value: bytes("x"), expires: now + 1_000 })
      yield* TestClock.adjust(999)
      expect(yield* inspector.ops("/s")).toEqual(["put"])
      expect(yield* eventually(() => changes(watching.events).length === 1)).toBe(true)
      yield* TestClock.adjust(1)
      expect(yield* eventually(() => changes(watching.events).length === 2)).toBe(true)
      const [put, expired] = changes(watching.events)
      expect(put).toMatchObject({
        _tag: "Put",
        seq: 1,
        item: { key: "/s", revision: lease.revision, expires: now + 1_000 }
      })
      const events = yield* inspector.events("/s")
      expect(expired).toEqual({
        _tag: "Expire",
        key: "/s",
        seq: 2,
        revision: events[1]!.revision,
        position: expired!.position
      })
      // readers and writers meeting it later record nothing more
      for (let i = 0; i < 3; i++) expect(yield* Effect.flip(store.get("/s"))).toEqual(new NotFound({ key: "/s" }))
      expect(yield* Effect.flip(store.update({ key: "/s", value: bytes("y") }))).toEqual(new NotFound({ key: "/s" }))
      yield* TestClock.adjust(10_000)
      expect(yield* inspector.ops("/s")).toEqual(["put", "expire"])
      expect(changes(watching.events)).toHaveLength(2)
      expect(events[1]!.timestamp).toBe(now + 1_000)
    }))

  it.effect("the timer follows keep-alives and expiries set later that fall earlier", () =>
    Effect.gen(function*() {
      const { inspector, store } = yield* MemoryStore.makeWithInspector()
      const now = yield* Clock.currentTimeMillis
      const kept = yield* store.put({ key: "/kept", value: bytes("k"), expires: now + 1_000 })
      yield* store.put({ key: "/late", value: bytes("l"), expires: now + 5_000 })
      yield* store.put({ key: "/early", value: bytes("e"), expires: now + 500 })
      yield* store.keepAlive(kept, now + 3_000)
      yield* TestClock.adjust(500)
      expect(yield* inspector.ops("/early")).toEqual(["put", "expire"])
      yield* TestClock.adjust(500)
      expect(yield* inspector.ops("/kept")).toEqual(["put", "keep-alive"])
      yield* TestClock.adjust(2_000)
      expect(yield* inspector.ops("/kept")).toEqual(["put", "keep-alive", "expire"])
      expect(yield* inspector.ops("/late")).toEqual(["put"])
      // an expiry removed by a later write never fires
      yield* store.put({ key: "/late", value: bytes("forever") })
      yield* TestClock.adjust(10_000)
      expect(yield* inspector.ops("/late")).toEqual(["put", "put"])
      expect(decoder.decode((yield* store.get("/late")).value)).toBe("forever")
    }))

  it.effect("many keys expiring at the same instant each get one expire event", () =>
    Effect.gen(function*() {
      const { inspector, store } = yield* MemoryStore.makeWithInspector()
      const now = yield* Clock.currentTimeMillis
      const keys = Array.from({ length: 20 }, (_, i) => `/k${i}`)
      yield* Effect.forEach(keys, (key) => store.put({ key, value: bytes(key), expires: now + 100 }), {
        concurrency: "unbounded"
      })
      yield* TestClock.adjust(100)
      yield* Effect.forEach(keys, (key) => Effect.flip(store.get(key)), { concurrency: "unbounded" })
      for (const key of keys) expect(yield* inspector.ops(key)).toEqual(["put", "expire"])
    }))
})

describe("watch", () => {
  it.effect("Init, then Put / Delete / Expire in per-key order with seqs, only under the prefixes", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      const { watching } = yield* watchInto(store, { prefixes: ["/a/", "/c/"] })
      const now = yield* Clock.currentTimeMillis
      yield* store.put({ key: "/a/1", value: bytes("one") })
      yield* store.put({ key: "/b/1", value: bytes("unwatched") })
      yield* store.put({ key: "/a/1", value: bytes("two") })
      yield* store.put({ key: "/c/1", value: bytes("brief"), expires: now + 10 })
      yield* store.delete("/a/1")
      yield* TestClock.adjust(10)
      expect(yield* eventually(() => changes(watching.events).length === 5)).toBe(true)
      expect(changes(watching.events).map(show)).toEqual([
        "Put /a/1#1=one",
        "Put /a/1#2=two",
        "Put /c/1#1=brief",
        "Delete /a/1#3",
        "Expire /c/1#2"
      ])
      // positions are places in the store's one log, increasing
      const places = changes(watching.events).map((event) => Number(event.position.shards["log"]))
      expect(places).toEqual([1, 3, 4, 5, 6])
    }))

  it.effect("resumeFrom replays every event after the position, then goes on live; a foreign position replays all", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      const first = yield* watchInto(store)
      yield* store.put({ key: "/r/a", value: bytes("1") })
      yield* store.put({ key: "/r/b", value: bytes("2") })
      yield* store.delete("/r/a")
      expect(yield* eventually(() => changes(first.watching.events).length === 3)).toBe(true)
      const position = changes(first.watching.events)[0]!.position

      const resumed = yield* watchInto(store, { resumeFrom: position })
      yield* store.put({ key: "/r/c", value: bytes("3") })
      expect(yield* eventually(() => changes(resumed.watching.events).length === 3)).toBe(true)
      expect(changes(resumed.watching.events).map(show)).toEqual(["Put /r/b#1=2", "Delete /r/a#2", "Put /r/c#1=3"])

      const foreign = yield* watchInto(store, { resumeFrom: { arn: "memory:another-store", shards: { log: "3" } } })
      expect(yield* eventually(() => changes(foreign.watching.events).length === 4)).toBe(true)
      expect(changes(foreign.watching.events).map(show)).toEqual([
        "Put /r/a#1=1",
        "Put /r/b#1=2",
        "Delete /r/a#2",
        "Put /r/c#1=3"
      ])
    }))

  it.effect("a consumer falling more than capacity behind fails with WatcherOverflow; other watches go on", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      const gate = yield* Deferred.make<void>()
      const slow = yield* watchInto(store, { capacity: 2 }, gate)
      const fast = yield* watchInto(store)
      for (let i = 0; i < 4; i++) yield* store.put({ key: `/o/${i}`, value: bytes(`${i}`) })
      yield* Deferred.succeed(gate, undefined)
      expect(yield* eventually(() => slow.watching.done)).toBe(true)
      expect(slow.watching.error).toMatchObject({ _tag: "WatcherOverflow", capacity: 2 })
      expect(changes(slow.watching.events).length).toBeLessThanOrEqual(2)
      expect(yield* eventually(() => changes(fast.watching.events).length === 4)).toBe(true)
      expect(fast.watching.error).toBeUndefined()
    }))

  it.effect("watches end when the store's scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const store = yield* MemoryStore.make().pipe(Scope.provide(scope))
      const { fiber, watching } = yield* watchInto(store)
      yield* store.put({ key: "/x", value: bytes("x") })
      yield* Scope.close(scope, Exit.void)
      yield* Fiber.join(fiber)
      expect(watching.done).toBe(true)
      expect(watching.error).toBeUndefined()
      expect(changes(watching.events).map(show)).toEqual(["Put /x#1=x"])
    }))
})

describe("shred and rewrap", () => {
  it.effect("shred erases the values of the scopes under a prefix (scopeByDepth(2)); events stay, others read on", () =>
    Effect.gen(function*() {
      const { inspector, store } = yield* MemoryStore.makeWithInspector({ scopeOf: scopeByDepth(2) })
      yield* store.put({ key: "/users/alice/a", value: bytes("a1") })
      yield* store.put({ key: "/users/alice/a", value: bytes("a2") })
      yield* store.put({ key: "/users/alice/b", value: bytes("b") })
      yield* store.put({ key: "/users/alice2/x", value: bytes("x") })
      yield* store.put({ key: "/users/bob/c", value: bytes("c") })
      const resume = yield* watchInto(store)
      expect(yield* store.shred("/users/alice")).toBe(1)

      expect(yield* Effect.flip(store.get("/users/alice/a"))).toEqual(
        new Shredded({ key: "/users/alice/a", seq: 2, scope: "/users/alice" })
      )
      expect(yield* Effect.flip(store.get("/users/alice/b"))).toMatchObject({ _tag: "Shredded", scope: "/users/alice" })
      expect(decoder.decode((yield* store.get("/users/alice2/x")).value)).toBe("x")
      expect(decoder.decode((yield* store.get("/users/bob/c")).value)).toBe("c")
      expect(yield* inspector.ops("/users/alice/a")).toEqual(["put", "put"])
      expect((yield* inspector.events("/users/alice/a")).map((event) => [event.value, event.shredded])).toEqual([
        [undefined, { scope: "/users/alice" }],
        [undefined, { scope: "/users/alice" }]
      ])
      const history = yield* Effect.flip(Stream.runCollect(store.history("/users/alice/a")))
      expect(history).toMatchObject({ _tag: "Shredded", seq: 1 })
      const range = yield* Effect.flip(store.getRange("/users/", Key.rangeEnd("/users/")))
      expect(range).toMatchObject({ _tag: "Shredded", key: "/users/alice/a" })
      // a shredded item is still present: it can be deleted and written anew, and the new value reads back
      yield* store.delete("/users/alice/b")
      yield* store.put({ key: "/users/alice/a", value: bytes("fresh") })
      expect(decoder.decode((yield* store.get("/users/alice/a")).value)).toBe("fresh")
      expect((yield* store.getRange("/users/", Key.rangeEnd("/users/"))).map((item) => item.key))
        .toEqual(["/users/alice/a", "/users/alice2/x", "/users/bob/c"])
      // nothing left to shred under the prefix but the fresh value
      expect(yield* store.shred("/users/alice")).toBe(1)
      expect(yield* store.shred("/users/alice")).toBe(0)
      // a resumed watch skips shredded values, as the DynamoDB store's does
      const replay = yield* watchInto(store, { resumeFrom: { arn: "elsewhere", shards: {} } })
      expect(yield* eventually(() => changes(replay.watching.events).length === 3)).toBe(true)
      expect(changes(replay.watching.events).map(show)).toEqual([
        "Put /users/alice2/x#1=x",
        "Put /users/bob/c#1=c",
        "Delete /users/alice/b#2"
      ])
      expect(resume.watching.error).toBeUndefined()
    }))

  it.effect("with the default scope function, shred(\"\") erases every value: one scope", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      yield* store.put({ key: "/a", value: bytes("a") })
      yield* store.put({ key: "/b/c", value: bytes("c") })
      expect(yield* store.shred("")).toBe(1)
      expect(yield* Effect.flip(store.get("/a"))).toEqual(new Shredded({ key: "/a", seq: 1, scope: "" }))
      expect(yield* Effect.flip(store.get("/b/c"))).toEqual(new Shredded({ key: "/b/c", seq: 1, scope: "" }))
    }))

  it.effect("rewrap has no data keys to re-wrap: 0, and nothing changes", () =>
    Effect.gen(function*() {
      const { inspector, store } = yield* MemoryStore.makeWithInspector()
      yield* store.put({ key: "/a", value: bytes("a") })
      const before = yield* inspector.snapshot
      const material = new Uint8Array(32).fill(7)
      const keyring = RawAesKeyring.make([{
        id: RawAesKeyring.fingerprint(material),
        material: Redacted.make(material)
      }])
      expect(yield* store.rewrap(keyring)).toBe(0)
      expect(yield* inspector.snapshot).toBe(before)
    }))
})

describe("history and getAt", () => {
  it.effect("every event of a key, oldest first; the item at a revision or a moment", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      const start = yield* Clock.currentTimeMillis
      const one = yield* store.put({ key: "/h", value: bytes("v1") })
      yield* TestClock.adjust(10)
      const two = yield* store.put({ key: "/h", value: bytes("v2"), expires: start + 1_000 })
      yield* TestClock.adjust(10)
      yield* store.keepAlive(two, start + 2_000)
      yield* TestClock.adjust(10)
      yield* store.delete("/h")
      yield* TestClock.adjust(10)
      const three = yield* store.put({ key: "/h", value: bytes("v3") })

      const events = [...yield* Stream.runCollect(store.history("/h"))]
      expect(events.map((event) => [event.seq, event.op, event.timestamp - start])).toEqual([
        [1, "put", 0],
        [2, "put", 10],
        [3, "keep-alive", 20],
        [4, "delete", 30],
        [5, "put", 40]
      ])
      expect(events[2]!.valueRevision).toBe(two.revision)
      expect(yield* store.getAt("/h", { _tag: "Revision", revision: one.revision })).toMatchObject({
        value: bytes("v1"),
        revision: one.revision
      })
      expect(yield* store.getAt("/h", { _tag: "Revision", revision: two.revision })).toMatchObject({
        value: bytes("v2"),
        expires: start + 1_000
      })
      expect(yield* store.getAt("/h", { _tag: "Time", millis: start + 5 })).toMatchObject({ value: bytes("v1") })
      expect(yield* store.getAt("/h", { _tag: "Time", millis: start + 25 })).toMatchObject({
        value: bytes("v2"),
        expires: start + 2_000
      })
      expect(yield* Effect.flip(store.getAt("/h", { _tag: "Time", millis: start + 35 }))).toEqual(
        new NotFound({ key: "/h" })
      )
      expect(yield* store.getAt("/h", { _tag: "Revision", revision: three.revision })).toMatchObject({
        value: bytes("v3")
      })
      expect(yield* Effect.flip(store.getAt("/h", { _tag: "Time", millis: start - 1 }))).toEqual(
        new NotFound({ key: "/h" })
      )
      expect(yield* Effect.flip(store.getAt("/h", { _tag: "Revision", revision: "unknown" }))).toEqual(
        new NotFound({ key: "/h" })
      )
      expect(yield* Effect.flip(store.getAt("", { _tag: "Revision", revision: one.revision }))).toMatchObject({
        _tag: "BadParameter"
      })
      expect([...yield* Stream.runCollect(store.history("/never"))]).toEqual([])
    }))
})

describe("layers and concurrency", () => {
  it.effect("each layer build is a new, empty store", () =>
    Effect.gen(function*() {
      const write = Effect.gen(function*() {
        yield* (yield* Store).put({ key: "/only-here", value: bytes("x") })
      })
      const read = Effect.gen(function*() {
        return yield* Effect.result((yield* Store).get("/only-here"))
      })
      yield* write.pipe(Effect.provide(MemoryStore.layer()))
      const elsewhere = yield* read.pipe(Effect.provide(MemoryStore.layer()))
      expect(elsewhere._tag).toBe("Failure")
      const same = yield* Effect.andThen(write, read).pipe(Effect.provide(MemoryStore.layer()))
      expect(same._tag).toBe("Success")
    }))

  it.effect("layerWithInspector gives the store and a look at its events", () =>
    Effect.gen(function*() {
      const ops = yield* Effect.gen(function*() {
        const store = yield* Store
        const lease = yield* store.put({ key: "/i", value: bytes("1") })
        yield* store.keepAlive(lease, undefined)
        yield* store.delete("/i")
        return yield* (yield* MemoryStore.MemoryInspector).ops("/i")
      }).pipe(Effect.provide(MemoryStore.layerWithInspector()))
      expect(ops).toEqual(["put", "keep-alive", "delete"])
    }))

  it.effect("concurrent compare-and-swap increments are linearizable: no lost update", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      yield* store.put({ key: "/counter", value: bytes("0") })
      const increment: Effect.Effect<void, unknown> = Effect.gen(function*() {
        const item = yield* store.get("/counter")
        const next = bytes(String(Number(decoder.decode(item.value)) + 1))
        const swapped = yield* Effect.result(store.compareAndSwap(item, { key: "/counter", value: next }))
        if (swapped._tag === "Failure") return yield* increment
      })
      yield* Effect.all(Array.from({ length: 40 }, () => increment), { concurrency: "unbounded" })
      expect(decoder.decode((yield* store.get("/counter")).value)).toBe("40")
    }))
})
