/**
 * Rebuilds from the event table on DynamoDB Local: the generic replay of a
 * projection with no rebuild of its own (newest event per covered key, in
 * key order, deletions included whether their tombstone is still live or
 * buried in a grave, shredded values skipped, progress counted in keys), a
 * projection's own rebuild and reset, and a rebuild beside a live worker.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import * as Key from "../../src/domain/Key.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { scopeByDepth } from "../../src/infra/crypto/DataKeys.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import { HistoryArea } from "../../src/infra/HistoryArea.ts"
import * as NewestEvents from "../../src/programs/store/NewestEvents.ts"
import { compactKey } from "../../src/programs/worker/Compaction.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import * as Rebuild from "../../src/programs/worker/Rebuild.ts"
import { rawGraves, rawKeyItems } from "../support/RawTable.ts"
import { eventTableLayer, openCompaction, openStore, tablePerFile } from "../support/TestStore.ts"
import type { OpenStoreOptions, TestTable } from "../support/TestStore.ts"
import { bytes, entries, memoryProjection } from "./support.ts"

const { client, freshLocation } = tablePerFile("rb")

/** The event table (with its data keys and DynamoDB client) of a location, as another process would open it. */
const services = (location: TestTable, options: OpenStoreOptions = {}) =>
  Layer.build(eventTableLayer(location, { client, ...options }))

/** Compacts the whole namespace: superseded events move to history, and tombstones with nothing older to their grave. */
const compactAll = (location: TestTable) =>
  Effect.gen(function*() {
    const compaction = yield* openCompaction(location, client)
    return yield* compaction.all(() => Effect.void, { settleMillis: 0 })
  }).pipe(Effect.scoped)

describe("NewestEvents.coveredRanges", () => {
  it("covers every key when no prefix is given, and each outermost prefix once, in key order", () => {
    expect(NewestEvents.coveredRanges([])).toEqual([{
      lower: new Uint8Array([0]),
      upper: SortKey.prefixUpperBound(""),
      descending: false
    }])
    expect(NewestEvents.coveredRanges(["/a/", ""])).toHaveLength(1)
    const ranges = NewestEvents.coveredRanges(["/u/", "/a/", "/u/x/", "/a/"])
    expect(ranges.map((range) => Key.fromBytes(range.lower))).toEqual(["/a/", "/u/"])
    expect(ranges.map((range) => range.upper)).toEqual([
      SortKey.prefixUpperBound("/a/"),
      SortKey.prefixUpperBound("/u/")
    ])
  })
})

describe("Rebuild.rebuild, generic replay", () => {
  it.live("brings a projection to the fold of the log: newest state per key, deletions included, live or buried", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const store = yield* openStore(location, { client })
      yield* store.put({ key: "/u/a", value: bytes("a1") })
      yield* store.put({ key: "/u/a", value: bytes("a2") })
      yield* store.put({ key: "/u/a", value: bytes("a3") })
      yield* store.put({ key: "/u/b", value: bytes("b1") })
      yield* store.delete("/u/b")
      yield* store.put({ key: "/u/c", value: bytes("c1"), expires: Date.now() + 3_600_000 })
      yield* store.put({ key: "/u/d", value: bytes("d1") })
      yield* store.delete("/u/d")
      yield* store.put({ key: "/u/d", value: bytes("d2") })
      yield* store.put({ key: "/u/f", value: bytes("f1") })
      yield* store.delete("/u/f")
      yield* store.put({ key: "/u0", value: bytes("just past the prefix") })
      yield* store.put({ key: "/v/x", value: bytes("another prefix") })
      yield* compactAll(location)
      // Deleted after compaction: this tombstone is still in the live range, /u/b's is in its grave.
      yield* store.put({ key: "/u/e", value: bytes("e1") })
      yield* store.delete("/u/e")
      // Re-created after its burial: a grave (seq 2) and a newer live event (seq 3).
      yield* store.put({ key: "/u/f", value: bytes("f again") })
      expect(yield* Effect.promise(() => rawKeyItems(client, location, "/u/b"))).toEqual([])
      expect((yield* Effect.promise(() => rawGraves(client, location))).map(({ key, op, seq }) => ({ key, seq, op })))
        .toEqual([
          { key: "/u/b", seq: 2, op: "delete" },
          { key: "/u/f", seq: 2, op: "delete" }
        ])
      expect((yield* Effect.promise(() => rawKeyItems(client, location, "/u/e"))).length).toBe(2)

      // A view that missed the deletions (and everything else) before it is rebuilt.
      const view = memoryProjection("users", ["/u/"])
      view.state.set("/u/b", { seq: 1, value: "b1" })
      view.state.set("/u/e", { seq: 1, value: "e1" })
      const progress: Array<[number, number]> = []
      const context = yield* services(location)
      const outcome = yield* Rebuild.rebuild(view.projection, {
        onProgress: (done, total) => Effect.sync(() => void progress.push([done, total]))
      }).pipe(Effect.provide(context))

      const expected = [
        ["/u/a", { seq: 3, value: "a3" }],
        ["/u/b", { seq: 2, value: undefined }],
        ["/u/c", { seq: 1, value: "c1" }],
        ["/u/d", { seq: 3, value: "d2" }],
        ["/u/e", { seq: 2, value: undefined }],
        ["/u/f", { seq: 3, value: "f again" }]
      ]
      expect(entries(view.state)).toEqual(expected)
      // The fold agrees with the store: its live items, and each key's newest seq.
      const live = yield* store.getRange("/u/", Key.rangeEnd("/u/"))
      expect(
        live.filter((item) => item.key.startsWith("/u/")).map((
          item
        ) => [item.key, new TextDecoder().decode(item.value)])
      )
        .toEqual(
          entries(view.state).filter(([, entry]) => entry.value !== undefined).map(([key, entry]) => [key, entry.value])
        )
      const eventTable = Context.get(context, EventTable)
      for (const [key, entry] of view.state) {
        const latest = yield* eventTable.latest(key)
        expect(Option.map(latest, (event) => event.seq), key).toEqual(Option.some(entry.seq))
      }
      // Each covered key once, newest event only, in key order.
      expect(view.calls).toEqual([
        "apply /u/a@3",
        "apply /u/b@2",
        "apply /u/c@1",
        "apply /u/d@3",
        "apply /u/e@2",
        "apply /u/f@3"
      ])
      expect(outcome).toEqual({ _tag: "Replayed", keys: 6, shredded: 0, unreadable: [] })
      expect(progress[0]).toEqual([0, 6])
      expect(progress.at(-1)).toEqual([6, 6])
      expect(progress.map(([done]) => done)).toEqual([0, 1, 2, 3, 4, 5, 6])
      expect(new Set(progress.map(([, total]) => total))).toEqual(new Set([6]))
    }))

  it.live("on a partitioned key space, replays every partition merged in key order, buried keys from their graves", () =>
    Effect.gen(function*() {
      const location = {
        ...freshLocation(),
        partitions: [{ prefix: "/a/", name: "a" }, { prefix: "/h/", name: "h", buckets: 4 }]
      }
      const store = yield* openStore(location, { client })
      const keys = ["/a/1", "/b", "/h/1", "/h/2", "/h/3", "/h/4", "/h/5", "/z"]
      for (const key of keys) yield* store.put({ key, value: bytes(key) })
      yield* store.delete("/h/2")
      yield* store.delete("/a/1")
      yield* compactAll(location)
      const everything = memoryProjection("everything", [])
      expect(yield* Rebuild.rebuild(everything.projection).pipe(Effect.provide(yield* services(location))))
        .toEqual({ _tag: "Replayed", keys: keys.length, shredded: 0, unreadable: [] })
      expect(everything.calls).toEqual(
        keys.map((key) => `apply ${key}@${key === "/h/2" || key === "/a/1" ? 2 : 1}`)
      )
    }))

  it.live("replays every key of the namespace when the prefixes are empty, and overlapping prefixes once", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const store = yield* openStore(location, { client })
      for (const key of ["/a/1", "/a/2", "/a/20/x", "/b", "/c/1"]) yield* store.put({ key, value: bytes(key) })
      yield* store.delete("/b")
      yield* compactAll(location)
      const context = yield* services(location)

      const everything = memoryProjection("everything", [])
      expect(yield* Rebuild.rebuild(everything.projection).pipe(Effect.provide(context)))
        .toEqual({ _tag: "Replayed", keys: 5, shredded: 0, unreadable: [] })
      expect(everything.calls).toEqual([
        "apply /a/1@1",
        "apply /a/2@1",
        "apply /a/20/x@1",
        "apply /b@2",
        "apply /c/1@1"
      ])

      const overlapping = memoryProjection("overlapping", ["/c/", "/a/2", "/a/", "/a/2"])
      yield* Rebuild.rebuild(overlapping.projection).pipe(Effect.provide(context))
      expect(overlapping.calls).toEqual(["apply /a/1@1", "apply /a/2@1", "apply /a/20/x@1", "apply /c/1@1"])
    }))

  it.live("over several pages, finds a tombstone buried while the scan runs in its grave, and every key once", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const store = yield* openStore(location, { client })
      // About 2.4 MB of values: DynamoDB pages (up to 1 MB) split the live range several times.
      const keys = Array.from({ length: 40 }, (_, i) => `/p/${String(i).padStart(2, "0")}`)
      const big = (key: string) => new Uint8Array(60_000).fill(key.charCodeAt(key.length - 1))
      for (const key of keys) yield* store.put({ key, value: big(key) })
      for (const key of ["/p/05x", "/p/17x", "/p/zz"]) {
        yield* store.put({ key, value: bytes("short-lived") })
        yield* store.delete(key)
      }
      yield* compactAll(location) // buries /p/05x, /p/17x and /p/zz
      yield* store.put({ key: "/p/zz", value: bytes("back") })
      yield* store.delete("/p/zz") // its newest tombstone (seq 4) is live again, for now

      const context = yield* services(location)
      const area = Context.get(
        yield* Layer.build(HistoryArea.layer.pipe(Layer.provide(Layer.succeedContext(context)))),
        HistoryArea
      )
      const view = memoryProjection("pages", ["/p/"])
      let buried = false
      // While the first key is applied (later pages unread), the last key's tombstone leaves the live range for its grave.
      const burying = Projection.make({
        ...view.projection,
        apply: (event) =>
          Effect.gen(function*() {
            if (!buried) {
              buried = true
              yield* compactKey(area, "/p/zz", 4, true, { retention: { _tag: "Forever" }, settleMillis: 0 })
            }
            yield* view.projection.apply(event)
          })
      })
      const outcome = yield* Rebuild.rebuild(burying).pipe(Effect.provide(context))
      expect(yield* Effect.promise(() => rawKeyItems(client, location, "/p/zz"))).toEqual([])
      expect(outcome).toEqual({ _tag: "Replayed", keys: 43, shredded: 0, unreadable: [] })
      expect(view.calls).toEqual(
        [...keys, "/p/05x", "/p/17x", "/p/zz"].sort().map((key) =>
          `apply ${key}@${key.endsWith("x") ? 2 : key === "/p/zz" ? 4 : 1}`
        )
      )
      expect(view.state.get("/p/zz")).toEqual({ seq: 4, value: undefined })
      expect(view.state.get("/p/39")?.value).toBe("9".repeat(60_000))
    }))

  it.live("skips shredded values (as the worker does), counting them, and replays the rest", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const policy = { dataKeyPolicy: { scopeOf: scopeByDepth(2) } }
      const store = yield* openStore(location, { client, ...policy })
      yield* store.put({ key: "/s/kept", value: bytes("kept") })
      yield* store.put({ key: "/s/gone", value: bytes("erased") })
      expect(yield* store.shred("/s/gone")).toBeGreaterThan(0)
      const view = memoryProjection("scoped", ["/s/"])
      const outcome = yield* Rebuild.rebuild(view.projection).pipe(Effect.provide(yield* services(location, policy)))
      expect(outcome).toEqual({ _tag: "Replayed", keys: 2, shredded: 1, unreadable: [] })
      expect(entries(view.state)).toEqual([["/s/kept", { seq: 1, value: "kept" }]])
    }))
})

describe("Rebuild.rebuild of projections with a rebuild or reset of their own", () => {
  it.live("runs a projection's own rebuild instead of replaying, without progress reports", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const store = yield* openStore(location, { client })
      yield* store.put({ key: "/k/1", value: bytes("v") })
      const calls: Array<string> = []
      const custom = Projection.make({
        name: "custom",
        prefixes: ["/k/"],
        apply: (event) => Effect.sync(() => void calls.push(`apply ${event.key}`)),
        rebuild: Effect.sync(() => void calls.push("own rebuild")),
        reset: Effect.sync(() => void calls.push("reset"))
      })
      const progress: Array<number> = []
      const outcome = yield* Rebuild.rebuild(custom, {
        onProgress: (done) => Effect.sync(() => void progress.push(done))
      }).pipe(
        Effect.provide(yield* services(location))
      )
      expect(outcome).toEqual({ _tag: "Custom" })
      expect(calls).toEqual(["own rebuild"])
      expect(progress).toEqual([])
    }))

  it.live("resets a projection before the generic replay, and withReplay makes that its rebuild", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const store = yield* openStore(location, { client })
      yield* store.put({ key: "/k/1", value: bytes("one") })
      yield* store.put({ key: "/k/2", value: bytes("two") })
      const view = memoryProjection("resettable", ["/k/"])
      view.state.set("/k/stale", { seq: 7, value: "from another table" })
      const resettable = {
        ...view.projection,
        reset: Effect.sync(() => {
          view.calls.push("reset")
          view.state.clear()
        })
      }
      const context = yield* services(location)

      yield* Rebuild.rebuild(resettable).pipe(Effect.provide(context))
      expect(view.calls).toEqual(["reset", "apply /k/1@1", "apply /k/2@1"])
      expect(entries(view.state)).toEqual([["/k/1", { seq: 1, value: "one" }], ["/k/2", { seq: 1, value: "two" }]])

      view.calls.length = 0
      yield* store.put({ key: "/k/2", value: bytes("two again") })
      const replayed = yield* Rebuild.withReplay(resettable).pipe(Effect.provide(context))
      yield* replayed.rebuild!
      expect(view.calls).toEqual(["reset", "apply /k/1@1", "apply /k/2@2"])
      expect(view.state.get("/k/2")).toEqual({ seq: 2, value: "two again" })
    }))

  it.effect("byName finds a projection or lists the names available", () =>
    Effect.gen(function*() {
      const a = memoryProjection("a", []).projection
      const b = memoryProjection("b", []).projection
      expect(yield* Rebuild.byName([a, b], "b")).toBe(b)
      const unknown = yield* Effect.flip(Rebuild.byName([a, b], "c", ["history"]))
      expect(unknown._tag).toBe("UnknownProjection")
      expect(unknown.projection).toBe("c")
      expect(unknown.available).toEqual(["history", "a", "b"])
      expect(unknown.message).toBe(`no projection named "c"; available: history, a, b`)
    }))
})
