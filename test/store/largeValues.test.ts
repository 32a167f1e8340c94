/**
 * Large values on DynamoDB Local: values above what one item holds are stored in chunk items and read back whole
 * by every read (get, ranges, history, getAt, watches), atomic writes included; the 16 MiB bound is refused before
 * any I/O and changes nothing.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import { ValueTooLarge } from "../../src/domain/Errors.ts"
import * as EventRecord from "../../src/infra/EventRecord.ts"
import * as ValueChunks from "../../src/infra/ValueChunks.ts"
import * as Rebuild from "../../src/programs/worker/Rebuild.ts"
import { entries, memoryProjection } from "../rebuild/support.ts"
import { eventually } from "../streams/Harness.ts"
import { rawPartition } from "../support/RawTable.ts"
import type { TestTable } from "../support/TestStore.ts"
import { eventTableLayer, openCompaction, openStore, tablePerFile } from "../support/TestStore.ts"
import { startWatch } from "../support/Watching.ts"

const files = tablePerFile("large")

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.compare(a, b) === 0

/** Every item of one of the location's partitions, read raw. */
const partitionItems = (client: DynamoDBClient, location: TestTable, partition: string) =>
  Effect.promise(() => rawPartition(client, location.table, partition))

/** The chunk items of a location (its markers left out). */
const chunkItems = (location: TestTable) =>
  Effect.map(
    partitionItems(files.client, location, ValueChunks.chunkPartition(location)),
    (items) => items.filter((item) => item[ValueChunks.ChunkAttr.index] !== undefined)
  )

describe("large values", () => {
  it.live(
    "values below, at and above the one-item threshold up to the bound: get, range, history and getAt",
    () =>
      Effect.gen(function*() {
        const location = files.freshLocation()
        const store = yield* openStore(location, { client: files.client })
        // The most one item holds depends on the key's length: each value is sized for its own key.
        const threshold = ValueChunks.largestWholeValue(location, "/v/a")
        const values = new Map<string, Uint8Array>([
          ["/v/b", randomBytes(threshold - 1)],
          ["/v/a", randomBytes(threshold)],
          ["/v/c", randomBytes(threshold + 1)],
          ["/v/mib", randomBytes(1024 * 1024 + 7)],
          ["/v/bound", randomBytes(ValueChunks.maxValueBytes)]
        ])
        const written = new Map<string, string>()
        for (const [key, value] of values) written.set(key, (yield* store.put({ key, value })).revision)
        for (const [key, value] of values) {
          const item = yield* store.get(key)
          expect(same(item.value, value), key).toBe(true)
          expect(item.revision).toBe(written.get(key))
        }
        const range = yield* store.getRange("/v/", "/v/~")
        expect(range.map((item) => item.key)).toEqual([...values.keys()].sort())
        for (const item of range) expect(same(item.value, values.get(item.key)!), item.key).toBe(true)
        const backwards = yield* Stream.runCollect(store.items({ start: "/v/", end: "/v/~", descending: true }))
        expect(backwards.map((item) => item.key)).toEqual([...values.keys()].sort().reverse())

        // Whole values in one item each, two chunk groups' worth of items for the rest.
        const chunks = yield* chunkItems(location)
        const chunkCount = (bytes: number) => Math.ceil(bytes / ValueChunks.chunkBytes)
        expect(chunks.length).toBe(
          chunkCount(threshold + 1) + chunkCount(1024 * 1024 + 7) + chunkCount(ValueChunks.maxValueBytes)
        )
        for (const chunk of chunks) expect(EventRecord.itemSize(chunk)).toBeLessThan(EventRecord.itemLimitBytes)

        // A second version: history and getAt read the first one's chunks, and the new one's.
        const second = randomBytes(threshold + 10)
        const before = yield* store.get("/v/mib")
        const after = yield* store.put({ key: "/v/mib", value: second })
        const history = yield* Stream.runCollect(store.history("/v/mib"))
        expect(history.map((event) => event.revision)).toEqual([before.revision, after.revision])
        expect(same(history[0]!.value, values.get("/v/mib")!)).toBe(true)
        expect(same(history[1]!.value, second)).toBe(true)
        const past = yield* store.getAt("/v/mib", { _tag: "Revision", revision: before.revision })
        expect(same(past.value, values.get("/v/mib")!)).toBe(true)
        expect(same((yield* store.get("/v/mib")).value, second)).toBe(true)
        expect(yield* store.deleteRange("/v/", "/v/~")).toBe(values.size)
      }),
    120_000
  )

  it.live(
    "atomic writes put large values: chunks outside the transaction, the events in it",
    () =>
      Effect.gen(function*() {
        const location = files.freshLocation()
        const store = yield* openStore(location, { client: files.client })
        // Together far beyond the 4 MB a transaction carries.
        const a = randomBytes(3 * 1024 * 1024)
        const b = randomBytes(2 * 1024 * 1024)
        yield* store.atomicWrite([
          { key: "/t/a", condition: Condition.notExists, action: Action.put(a) },
          { key: "/t/b", condition: Condition.notExists, action: Action.put(b) },
          { key: "/t/c", condition: Condition.notExists, action: Action.put(new Uint8Array([1, 2, 3])) }
        ])
        expect(same((yield* store.get("/t/a")).value, a)).toBe(true)
        expect(same((yield* store.get("/t/b")).value, b)).toBe(true)
        // A failed condition writes no event; its chunks are left to the worker's collection.
        const failed = yield* Effect.flip(store.atomicWrite([
          { key: "/t/a", condition: Condition.notExists, action: Action.put(randomBytes(1024 * 1024)) }
        ]))
        expect(failed._tag).toBe("ConditionFailed")
        expect(same((yield* store.get("/t/a")).value, a)).toBe(true)
      }),
    60_000
  )

  it.live(
    "keepAlive and conditional writes of a large value: a keep-alive carries the value in chunks of its own",
    () =>
      Effect.gen(function*() {
        const location = files.freshLocation()
        const store = yield* openStore(location, { client: files.client })
        const value = randomBytes(700_000)
        const created = yield* store.create({ key: "/k/large", value, expires: Date.now() + 3_600_000 })
        yield* store.keepAlive(created, Date.now() + 7_200_000)
        const kept = yield* store.get("/k/large")
        expect(same(kept.value, value)).toBe(true)
        expect(kept.expires).toBeGreaterThan(Date.now() + 3_600_000)
        const swapped = randomBytes(800_000)
        yield* store.compareAndSwap({ key: "/k/large", value }, { key: "/k/large", value: swapped })
        yield* store.conditionalUpdate({ key: "/k/large", value, revision: (yield* store.get("/k/large")).revision })
        expect(same((yield* store.get("/k/large")).value, value)).toBe(true)
        // Four events with values, each with chunks of its own.
        expect((yield* chunkItems(location)).length).toBe(2 + 2 + 3 + 2)
      }),
    60_000
  )

  it.live(
    "a rebuild replays large values whole, from the live range and after compaction",
    () =>
      Effect.gen(function*() {
        const location = files.freshLocation()
        const store = yield* openStore(location, { client: files.client })
        const text = (name: string) => `${name}:${"x".repeat(600_000)}`
        yield* store.put({ key: "/r/a", value: Buffer.from(text("a1")) })
        yield* store.put({ key: "/r/a", value: Buffer.from(text("a2")) })
        yield* store.put({ key: "/r/b", value: Buffer.from(text("b1")) })
        yield* store.delete("/r/b")
        const compaction = yield* openCompaction(location, files.client)
        yield* compaction.all(() => Effect.void, { settleMillis: 0 })
        yield* store.put({ key: "/r/c", value: Buffer.from(text("c1")) })
        const view = memoryProjection("large", ["/r/"])
        const context = yield* Layer.build(eventTableLayer(location, { client: files.client }))
        yield* Rebuild.rebuild(view.projection).pipe(Effect.provide(context))
        expect(entries(view.state)).toEqual([
          ["/r/a", { seq: 2, value: text("a2") }],
          ["/r/b", { seq: 2, value: undefined }],
          ["/r/c", { seq: 1, value: text("c1") }]
        ])
      }),
    60_000
  )

  it.live("a watch delivers the whole value of a large put", () =>
    Effect.gen(function*() {
      const location = files.freshLocation()
      const store = yield* openStore(location, { client: files.client })
      const { watching } = yield* startWatch(store)
      expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
      const value = randomBytes(2 * 1024 * 1024 + 3)
      const written = yield* store.put({ key: "/w/large", value })
      expect(yield* eventually(() => watching.events.some((event) => event._tag === "Put"), 20_000)).toBe(true)
      const put = watching.events.find((event) => event._tag === "Put")
      expect(put?._tag === "Put" && put.item.revision).toBe(written.revision)
      expect(put?._tag === "Put" && same(put.item.value, value)).toBe(true)
      expect(watching.error).toBeUndefined()
    }), 60_000)

  it.live("compression: a compressible value is stored smaller and read back whole", () =>
    Effect.gen(function*() {
      const location = files.freshLocation()
      const store = yield* openStore(location, { client: files.client, compression: "gzip" })
      const value = Buffer.from("compressible text ".repeat(200_000))
      yield* store.put({ key: "/z/text", value })
      const incompressible = randomBytes(500_000)
      yield* store.put({ key: "/z/random", value: incompressible })
      expect(same((yield* store.get("/z/text")).value, value)).toBe(true)
      expect(same((yield* store.get("/z/random")).value, incompressible)).toBe(true)
      const chunks = yield* chunkItems(location)
      // The text takes one chunk instead of ten; random bytes are stored as they are.
      expect(chunks.length).toBe(1 + Math.ceil(incompressible.length / ValueChunks.chunkBytes))
      // A store without compression reads compressed values all the same.
      const plain = yield* openStore(location, { client: files.client })
      expect(same((yield* plain.get("/z/text")).value, value)).toBe(true)
    }), 60_000)

  it.live(
    "a value one byte over the bound is ValueTooLarge for every write and changes nothing",
    () =>
      Effect.gen(function*() {
        const location = files.freshLocation()
        const store = yield* openStore(location, { client: files.client })
        yield* store.put({ key: "/b/seed", value: new Uint8Array([1]) })
        const before = yield* partitionItems(files.client, location, location.namespace)
        const big = new Uint8Array(ValueChunks.maxValueBytes + 1)
        const writes: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
          store.put({ key: "/b/seed", value: big }),
          store.create({ key: "/b/new", value: big }),
          store.atomicWrite([{ key: "/b/new", condition: Condition.whatever, action: Action.put(big) }])
        ]
        for (const write of writes) {
          const error = yield* Effect.flip(write)
          expect(error).toBeInstanceOf(ValueTooLarge)
          expect(error).toMatchObject({ key: expect.stringMatching(/^\/b\//), limitBytes: ValueChunks.maxValueBytes })
        }
        expect(yield* partitionItems(files.client, location, location.namespace)).toEqual(before)
        expect(yield* chunkItems(location)).toEqual([])
      }),
    60_000
  )
})
