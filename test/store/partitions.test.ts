/**
 * A partitioned key space on DynamoDB Local (see `Partitioning`): keys land in their prefix's partition (a bucket by
 * hash), ranges across partitions merge in key order in both directions, atomic writes, deleteRange, history and
 * watches span partitions, sealed prefixes inside a partitioned one route by their stored keys, and the layout
 * record keeps every store of a namespace on one layout.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as Key from "../../src/domain/Key.ts"
import type { Layout } from "../../src/domain/Partitioning.ts"
import { partitionOf as dataKeyPartition } from "../../src/infra/crypto/DataKeyStore.ts"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import * as LayoutRecord from "../../src/infra/LayoutRecord.ts"
import { keyPartition, livePartitions, metaPartition } from "../../src/infra/PartitionKeys.ts"
import { eventually } from "../streams/Harness.ts"
import { rawKeyItems } from "../support/RawTable.ts"
import { openStore, openStoreChecked, storedKeyOf, tablePerFile } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"
import { changes, describeEvent, startWatch } from "../support/Watching.ts"
import { scanAll, snapshot } from "./contract/harness.ts"

const files = tablePerFile("partitions")
const encoder = new TextEncoder()
const bytes = (text: string) => encoder.encode(text)
const decoder = new TextDecoder()

const layout: Layout = [
  { prefix: "/own/", name: "own" },
  { prefix: "/hot/", name: "hot", buckets: 4 }
]

const partitioned = (): TestTable => ({ ...files.freshLocation(), partitions: layout })

/** The partition key of a key's raw event items. */
const rawPartitionOf = (location: TestTable, key: string) =>
  Effect.promise(async () => {
    const items = await rawKeyItems(files.client, location, key)
    return items.map((item) => item[Attr.partition]?.S)
  })

const keys = [
  "/a",
  "/hot/0",
  "/hot/1",
  "/hot/2",
  "/hot/3",
  "/hot/4",
  "/hot/5",
  "/hot/6",
  "/hot/7",
  "/hot/8",
  "/hot/9",
  "/own/x",
  "/own/y",
  "/p",
  "/z"
]

describe("a partitioned key space", () => {
  it.live("routes each key's events to its partition, the default partition being the namespace itself", () =>
    Effect.gen(function*() {
      const location = partitioned()
      const store = yield* openStore(location, { client: files.client })
      yield* Effect.forEach(keys, (key) => store.put({ key, value: bytes(key) }), { concurrency: 8 })
      expect(yield* rawPartitionOf(location, "/a")).toEqual([location.namespace])
      expect(yield* rawPartitionOf(location, "/own/x")).toEqual([`${location.namespace}\u0000@own`])
      const hot = new Set<string | undefined>()
      for (const key of keys.filter((key) => key.startsWith("/hot/"))) {
        const [partition] = yield* rawPartitionOf(location, key)
        expect(partition).toBe(keyPartition(location, key))
        hot.add(partition)
      }
      // Ten keys over four buckets: more than one bucket takes them (the hash is fixed, so this is too).
      expect(hot.size).toBeGreaterThan(1)
      for (const key of keys) expect(decoder.decode((yield* store.get(key)).value)).toBe(key)
    }))

  it.live("ranges across partitions come back merged in key order, both directions, with limits and lazily", () =>
    Effect.gen(function*() {
      const location = partitioned()
      const store = yield* openStore(location, { client: files.client })
      yield* Effect.forEach(keys, (key) => store.put({ key, value: bytes(key) }), { concurrency: 8 })
      yield* store.delete("/hot/3")
      const expected = keys.filter((key) => key !== "/hot/3")
      const all = yield* store.getRange("/", Key.rangeEnd("/"))
      expect(all.map((item) => item.key)).toEqual(expected)
      const descending = yield* store.items({ start: "/", end: Key.rangeEnd("/"), descending: true }).pipe(
        Stream.runCollect
      )
      expect([...descending].map((item) => item.key)).toEqual([...expected].reverse())
      expect((yield* store.getRange("/", Key.rangeEnd("/"), { limit: 4 })).map((item) => item.key)).toEqual(
        expected.slice(0, 4)
      )
      const inside = yield* store.getRange("/hot/", Key.rangeEnd("/hot/"))
      expect(inside.map((item) => item.key)).toEqual(expected.filter((key) => key.startsWith("/hot/")))
      const firstTwo = yield* store.items({ start: "/hot/", end: Key.rangeEnd("/hot/"), descending: true }).pipe(
        Stream.take(2),
        Stream.runCollect
      )
      expect([...firstTwo].map((item) => item.key)).toEqual(["/hot/9", "/hot/8"])
    }))

  it.live("atomic writes, deleteRange, history and getAt span partitions; a re-created key continues its seqs", () =>
    Effect.gen(function*() {
      const location = partitioned()
      const store = yield* openStore(location, { client: files.client })
      yield* store.put({ key: "/hot/a", value: bytes("1") })
      const revision = yield* store.atomicWrite([
        { key: "/hot/a", condition: { _tag: "Exists" }, action: { _tag: "Put", value: bytes("2") } },
        { key: "/own/a", condition: { _tag: "NotExists" }, action: { _tag: "Put", value: bytes("x") } },
        { key: "/b", condition: { _tag: "NotExists" }, action: { _tag: "Put", value: bytes("y") } }
      ])
      expect((yield* store.get("/own/a")).revision).toBe(revision)
      expect((yield* store.get("/b")).revision).toBe(revision)
      const past = yield* store.history("/hot/a").pipe(Stream.runCollect)
      expect([...past].map((event) => [event.seq, event.op])).toEqual([[1, "put"], [2, "put"]])
      expect(decoder.decode((yield* store.getAt("/hot/a", { _tag: "Revision", revision })).value)).toBe("2")
      expect(yield* store.deleteRange("/", Key.rangeEnd("/"))).toBe(3)
      expect(yield* store.getRange("/", Key.rangeEnd("/"))).toEqual([])
      yield* store.put({ key: "/hot/a", value: bytes("3") })
      const again = yield* store.history("/hot/a").pipe(Stream.runCollect)
      expect([...again].map((event) => event.seq)).toEqual([1, 2, 3, 4])
    }))

  it.live("watches see every partition's events, in per-key order", () =>
    Effect.gen(function*() {
      const location = partitioned()
      const store = yield* openStore(location, { client: files.client })
      const { watching } = yield* startWatch(store)
      expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
      yield* store.put({ key: "/hot/w", value: bytes("1") })
      yield* store.put({ key: "/own/w", value: bytes("2") })
      yield* store.put({ key: "/w", value: bytes("3") })
      yield* store.delete("/hot/w")
      expect(yield* eventually(() => changes(watching.events).length >= 4)).toBe(true)
      expect(changes(watching.events).map(describeEvent).sort()).toEqual(
        ["Delete /hot/w#2", "Put /hot/w#1=1", "Put /own/w#1=2", "Put /w#1=3"].sort()
      )
    }))

  it.live("a sealed prefix inside a bucketed one routes by its stored keys", () =>
    Effect.gen(function*() {
      const location = partitioned()
      const sealed = [{ prefix: "/hot/tokens/", seal: "segment" as const }]
      const store = yield* openStore(location, { client: files.client, storeOptions: { sealed } })
      const secrets = ["s1", "s2", "s3", "s4", "s5"].map((name) => `/hot/tokens/${name}`)
      yield* Effect.forEach(secrets, (key) => store.put({ key, value: bytes(key) }))
      const stored = yield* storedKeyOf(location, sealed, secrets[0]!, files.client)
      expect(yield* rawPartitionOf(location, stored)).toEqual([keyPartition(location, stored)])
      const read = yield* store.getRange("/hot/", Key.rangeEnd("/hot/"))
      expect(read.map((item) => item.key)).toEqual(secrets)
    }))
})

describe("the layout record", () => {
  const open = (location: TestTable, partitions?: Layout) =>
    Effect.flip(openStoreChecked({ ...location, partitions }, { client: files.client }))

  it.live("a store whose layout differs from the recorded one refuses to open, naming both and the migration", () =>
    Effect.gen(function*() {
      const location = files.freshLocation()
      yield* openStore({ ...location, partitions: layout }, { client: files.client })
      const recorded = yield* LayoutRecord.read(location).pipe(
        Effect.provideService(Dynamo, Dynamo.fromClient(files.client))
      )
      expect(recorded).toEqual([{ prefix: "/hot/", name: "hot", buckets: 4 }, {
        prefix: "/own/",
        name: "own",
        buckets: 1
      }])
      const other = yield* open(location, [{ prefix: "/hot/", name: "hot", buckets: 8 }])
      expect(other._tag).toBe("ConfigInvalid")
      expect(other._tag === "ConfigInvalid" && other.field).toBe("storage.partitioned_prefixes")
      expect(other.reason).toContain("/hot/ → hot (4 buckets), /own/ → own")
      expect(other.reason).toContain("/hot/ → hot (8 buckets)")
      expect(other.reason).toContain("migration")
      const none = yield* open(location)
      expect(none.reason).toContain("none (one partition)")
      // The same layout in another order opens.
      yield* openStore({ ...location, partitions: [...layout].reverse() }, { client: files.client })
    }))

  it.live("an existing single-partition namespace opens without a layout exactly as before: no item written", () =>
    Effect.gen(function*() {
      const location = files.freshLocation()
      const store = yield* openStore(location, { client: files.client })
      yield* store.put({ key: "/hot/1", value: bytes("1") })
      const before = yield* snapshot(files.client, location.table)
      yield* openStore(location, { client: files.client })
      expect(yield* snapshot(files.client, location.table)).toBe(before)
      const items = (yield* scanAll(files.client, location.table)).filter((item) =>
        item[Attr.partition]?.S?.startsWith(location.namespace)
      )
      // The event and the data key its value is encrypted under, nothing else (no layout record).
      expect(items.map((item) => item[Attr.partition]?.S).sort()).toEqual(
        [location.namespace, dataKeyPartition(location.namespace)].sort()
      )
      expect(items.some((item) => item[Attr.partition]?.S === metaPartition(location.namespace))).toBe(false)
      expect(livePartitions(location)).toEqual([location.namespace])
    }))

  it.live("a layout partitioning a prefix that already holds keys is refused until migrated; elsewhere it is recorded", () =>
    Effect.gen(function*() {
      const location = files.freshLocation()
      const store = yield* openStore(location, { client: files.client })
      yield* store.put({ key: "/hot/1", value: bytes("1") })
      yield* store.put({ key: "/gone/1", value: bytes("1") })
      yield* store.delete("/gone/1")
      const before = yield* snapshot(files.client, location.table)
      const refused = yield* open(location, layout)
      expect(refused.reason).toContain("already holds keys under /hot/")
      expect(refused.reason).toContain("migration")
      expect(yield* snapshot(files.client, location.table)).toBe(before)
      const fresh = yield* open(location, [{ prefix: "/gone/", name: "gone" }])
      expect(fresh.reason).toContain("already holds keys under /gone/")
      const partitionedStore = yield* openStore({ ...location, partitions: [{ prefix: "/new/", name: "new" }] }, {
        client: files.client
      })
      expect(decoder.decode((yield* partitionedStore.get("/hot/1")).value)).toBe("1")
      // The namespace now has a record: a store without the layout refuses.
      expect((yield* open(location)).reason).toContain("/new/ → new")
    }))

  it.live("of stores racing to record the first layout, those with the winner's open and the others refuse", () =>
    Effect.gen(function*() {
      const location = files.freshLocation()
      const other: Layout = [{ prefix: "/own/", name: "own", buckets: 2 }]
      const layouts = [layout, other, layout, other, layout, other]
      const outcomes = yield* Effect.forEach(
        layouts,
        (each) => Effect.result(openStoreChecked({ ...location, partitions: each }, { client: files.client })),
        { concurrency: "unbounded" }
      )
      const recorded = yield* LayoutRecord.read(location).pipe(
        Effect.provideService(Dynamo, Dynamo.fromClient(files.client))
      )
      const winner = recorded?.length === 2 ? layout : other
      for (const [index, outcome] of outcomes.entries()) {
        expect(outcome._tag, `store ${index}`).toBe(layouts[index] === winner ? "Success" : "Failure")
      }
    }))

  it.live("an unsound layout is ConfigInvalid before any I/O", () =>
    Effect.gen(function*() {
      const location = files.freshLocation()
      const before = yield* snapshot(files.client, location.table)
      const nested = yield* open(location, [{ prefix: "/a/", name: "a" }, { prefix: "/a/b/", name: "b" }])
      expect(nested.reason).toContain("must not nest")
      const sealedAround = yield* Effect.flip(
        openStoreChecked({ ...location, partitions: [{ prefix: "/t/x/", name: "x" }] }, {
          client: files.client,
          storeOptions: { sealed: [{ prefix: "/t/", seal: "segment" }] }
        })
      )
      expect(sealedAround.reason).toContain("inside the sealed prefix /t/")
      expect(yield* snapshot(files.client, location.table)).toBe(before)
    }))
})
