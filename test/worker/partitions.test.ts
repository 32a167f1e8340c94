/**
 * The worker on a partitioned key space (see `Partitioning`): compaction moves each key's superseded events into
 * the history area beside the key's own partition (a bucketed prefix's history spreads over its buckets as its
 * events do), buries tombstones in that partition's graves, and `history`, `getAt` and a re-created key's seq
 * numbering read them back across partitions; an index view over a bucketed prefix backfills and follows every bucket.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import * as Key from "../../src/domain/Key.ts"
import type { Layout } from "../../src/domain/Partitioning.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { areaPartition, keyPartition, livePartitions } from "../../src/infra/PartitionKeys.ts"
import * as IndexView from "../../src/programs/views/IndexView.ts"
import { rawPartition } from "../support/RawTable.ts"
import { eventTableLayer, openStore } from "../support/TestStore.ts"
import { archivedEvents, bytes, eventually, freshEnv, liveEvents, startWorker, text } from "./support.ts"

const layout: Layout = [
  { prefix: "/own/", name: "own" },
  { prefix: "/hot/", name: "hot", buckets: 4 }
]

describe("the worker on a partitioned key space", () => {
  it.live("compacts each partition into its own history and graves; history, getAt and re-creation read across them", () =>
    Effect.gen(function*() {
      const base = yield* freshEnv("worker-partitions")
      const env = { ...base, location: { ...base.location, partitions: layout } }
      const store = yield* openStore(env.location, { client: env.client })
      yield* startWorker(env, { group: "partitions" })
      const keys = ["/d", "/own/a", ...Array.from({ length: 8 }, (_, i) => `/hot/${i}`)]
      const revisions = new Map<string, Array<string>>()
      for (const version of [1, 2, 3]) {
        yield* Effect.forEach(
          keys,
          (key) =>
            Effect.map(
              store.put({ key, value: bytes(`${key}@${version}`) }),
              (lease) => revisions.set(key, [...(revisions.get(key) ?? []), lease.revision])
            ),
          { concurrency: 5 }
        )
      }
      yield* store.delete("/hot/0")
      yield* store.delete("/own/a")

      yield* eventually(
        "compaction done",
        Effect.gen(function*() {
          const live = yield* liveEvents(env)
          expect(live.map((event) => [event.key, event.seq])).toEqual(
            keys.filter((key) => key !== "/hot/0" && key !== "/own/a").sort().map((key) => [key, 3])
          )
          const archived = yield* archivedEvents(env)
          expect(archived).toHaveLength(keys.length * 3 - 8 + 2)
        })
      )

      // Every archived copy lies beside its key's own partition, so a bucketed prefix's history spreads too.
      const historyPartitions = new Set<string>()
      for (const live of livePartitions(env.location)) {
        const items = yield* Effect.promise(() =>
          rawPartition(env.client, env.location.table, areaPartition(live, "history"))
        )
        for (const item of items) {
          const { key } = SortKey.decode(item[Attr.sort]!.B!)
          expect(keyPartition(env.location, key)).toBe(live)
          historyPartitions.add(live)
        }
      }
      expect([...historyPartitions].filter((partition) => partition.includes("@hot.")).length).toBeGreaterThan(1)
      for (const key of ["/hot/0", "/own/a"]) {
        const graves = yield* Effect.promise(() =>
          rawPartition(env.client, env.location.table, areaPartition(keyPartition(env.location, key), "graves"))
        )
        expect(graves.map((item) => SortKey.decode(item["tsk"]!.B!))).toContainEqual({ key, seq: 4 })
      }

      // The past reads back across partitions.
      const past = yield* store.history("/hot/5").pipe(Stream.runCollect)
      expect([...past].map((event) => text(event.value ?? new Uint8Array()))).toEqual([
        "/hot/5@1",
        "/hot/5@2",
        "/hot/5@3"
      ])
      const first = revisions.get("/own/a")![0]!
      expect(text((yield* store.getAt("/own/a", { _tag: "Revision", revision: first })).value)).toBe("/own/a@1")
      expect((yield* Effect.flip(store.get("/hot/0")))._tag).toBe("NotFound")
      expect((yield* store.getRange("/", Key.rangeEnd("/"))).map((item) => item.key)).toEqual(
        keys.filter((key) => key !== "/hot/0" && key !== "/own/a").sort()
      )
      // A buried key comes back numbered after its grave.
      yield* store.put({ key: "/hot/0", value: bytes("again") })
      const again = yield* store.history("/hot/0").pipe(Stream.runCollect)
      expect([...again].map((event) => event.seq)).toEqual([1, 2, 3, 4, 5])
    }))

  it.live("an index view over a bucketed prefix backfills from every bucket and follows each bucket's changes", () =>
    Effect.gen(function*() {
      const base = yield* freshEnv("worker-partitions-view")
      const env = { ...base, location: { ...base.location, partitions: layout } }
      const store = yield* openStore(env.location, { client: env.client })
      const owner = (name: string) => bytes(JSON.stringify({ owner: name }))
      const ownerOf = (value: Uint8Array) => (JSON.parse(text(value)) as { owner?: string }).owner
      for (const i of [0, 1, 2, 3, 4, 5]) {
        yield* store.put({ key: `/hot/${i}`, value: owner(i % 2 === 0 ? "even" : "odd") })
      }
      const services = yield* Layer.build(eventTableLayer(env.location, { client: env.client }))
      const byOwner = yield* IndexView.make({
        name: "by-owner",
        prefix: "/hot/",
        indexOf: (item) => ownerOf(item.value)
      })
        .pipe(Effect.provide(services))
      yield* byOwner.projection.rebuild!.pipe(Effect.provide(services))
      const keysOf = (index: string) => Effect.map(byOwner.view.query(index), (items) => items.map((item) => item.key))
      expect(yield* keysOf("even")).toEqual(["/hot/0", "/hot/2", "/hot/4"])
      yield* startWorker(env, { group: "partitions-view", projections: [byOwner.projection], resyncMillis: 300 })
      yield* store.put({ key: "/hot/6", value: owner("even") })
      yield* store.put({ key: "/hot/1", value: owner("even") })
      yield* store.delete("/hot/0")
      yield* eventually(
        "the view follows every bucket",
        Effect.gen(function*() {
          expect(yield* keysOf("even")).toEqual(["/hot/1", "/hot/2", "/hot/4", "/hot/6"])
          expect(yield* keysOf("odd")).toEqual(["/hot/3", "/hot/5"])
        })
      )
    }))
})
