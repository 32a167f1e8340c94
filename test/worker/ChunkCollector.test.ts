/**
 * The collection of orphaned chunks on DynamoDB Local: chunks without a stored event (a write that died between
 * chunks and event, an append that lost its seq, an event compaction dropped) are collected once past the grace
 * period; chunks of live events and of events in the history area are kept, and their values still read.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Stream } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import type { Event } from "../../src/domain/Event.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import * as ChunkArea from "../../src/infra/ChunkArea.ts"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import { historyPartition } from "../../src/infra/HistoryRecord.ts"
import { keyArea } from "../../src/infra/PartitionKeys.ts"
import * as ValueChunks from "../../src/infra/ValueChunks.ts"
import { ChunkCollector, sweep } from "../../src/programs/worker/ChunkCollector.ts"
import { eventually } from "../streams/Harness.ts"
import { deleteRawEvent, rawPartition } from "../support/RawTable.ts"
import type { TestTable } from "../support/TestStore.ts"
import { eventTableLayer, openCompaction, openStore, tablePerFile } from "../support/TestStore.ts"

const files = tablePerFile("chunks")

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.compare(a, b) === 0

const large = () => randomBytes(600_000)

/** Writes the chunks of an event that never lands, as a writer that died (or lost its seq) would leave them. */
const plantOrphan = (location: TestTable, event: Omit<Event, "op" | "value">) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(eventTableLayer(location, { client: files.client }))
    const split = yield* ValueChunks.split(location, { ...event, op: "put", value: large() }, "none").pipe(
      Effect.provideContext(context)
    )
    yield* ChunkArea.make(Context.get(context, Dynamo), location).write(split)
  })

const ownersOf = (location: TestTable) =>
  Effect.gen(function*() {
    const area = ChunkArea.make(Dynamo.fromClient(files.client), location)
    const owners = yield* Stream.runCollect(area.owners)
    return owners.map((owner) => `${owner.key}#${owner.seq}`).sort()
  })

describe("ChunkCollector", () => {
  it.live(
    "collects orphans past the grace period, keeps chunks of live and history events",
    () =>
      Effect.gen(function*() {
        const location = files.freshLocation()
        const store = yield* openStore(location, { client: files.client })
        const kept = { v1: large(), v2: large() }
        const first = yield* store.put({ key: "/keep", value: kept.v1 })
        yield* store.put({ key: "/keep", value: kept.v2 })
        // /keep's first version moves to the history area, chunks and all staying where they are.
        const compaction = yield* openCompaction(location, files.client)
        yield* compaction.all(() => Effect.void, { settleMillis: 0 })
        yield* store.put({ key: "/drop", value: large() })
        yield* store.put({ key: "/drop", value: new Uint8Array([1]) })

        const hour = 3_600_000
        const now = Date.now()
        yield* plantOrphan(location, { key: "/dead", seq: 1, revision: randomUUID(), timestamp: now - hour })
        yield* plantOrphan(location, { key: "/young", seq: 1, revision: randomUUID(), timestamp: now })
        // Lost its seq to the event that holds it now: same key and seq, another event id.
        yield* plantOrphan(location, { key: "/keep", seq: 1, revision: randomUUID(), timestamp: now - hour })
        expect(yield* ownersOf(location)).toEqual(["/dead#1", "/drop#1", "/keep#1", "/keep#1", "/keep#2", "/young#1"])

        const area = ChunkArea.make(Dynamo.fromClient(files.client), location)
        const swept = yield* sweep(area, 60_000)
        expect(swept).toMatchObject({ owners: 6, collected: 2 })
        expect(swept.chunks).toBe(2 * Math.ceil(600_000 / ValueChunks.chunkBytes))
        // /young is within the grace period; the others' events are stored, live or in the history area.
        expect(yield* ownersOf(location)).toEqual(["/drop#1", "/keep#1", "/keep#2", "/young#1"])
        const history = yield* Stream.runCollect(store.history("/keep"))
        expect(history.map((event) => event.revision)[0]).toBe(first.revision)
        expect(same(history[0]!.value, kept.v1)).toBe(true)
        expect(same(history[1]!.value, kept.v2)).toBe(true)

        // Dropped by compaction (retention None): its event is gone, so its chunks go; past its grace, the young
        // orphan too. The history event's chunks stay.
        yield* compaction.all(() => Effect.void, { settleMillis: 0, retention: { _tag: "None" } })
        expect((yield* sweep(area, 0)).collected).toBe(2)
        expect(yield* ownersOf(location)).toEqual(["/keep#1", "/keep#2"])
        expect(same((yield* Stream.runCollect(store.history("/keep")))[0]!.value, kept.v1)).toBe(true)
        expect(same((yield* store.get("/keep")).value, kept.v2)).toBe(true)

        // DynamoDB's TTL deletes a history copy whose retention ran out: its chunks go with it, the live event's stay.
        yield* Effect.promise(() =>
          deleteRawEvent(files.client, { table: location.table, namespace: historyPartition(location) }, "/keep", 1)
        )
        expect((yield* sweep(area, 0)).collected).toBe(1)
        expect(yield* ownersOf(location)).toEqual(["/keep#2"])
        expect(same((yield* store.get("/keep")).value, kept.v2)).toBe(true)
      }),
    120_000
  )

  it.live(
    "on a partitioned key space, chunks lie beside their key's partition, and orphans are collected in every one",
    () =>
      Effect.gen(function*() {
        const location = {
          ...files.freshLocation(),
          partitions: [{ prefix: "/own/", name: "own" }, { prefix: "/hot/", name: "hot", buckets: 4 }]
        }
        const store = yield* openStore(location, { client: files.client })
        const values = new Map(["/a", "/own/a", "/hot/a", "/hot/b", "/hot/c"].map((key) => [key, large()]))
        for (const [key, value] of values) yield* store.put({ key, value })
        const hour = 3_600_000
        for (const key of ["/hot/x", "/hot/y", "/own/x", "/x"]) {
          yield* plantOrphan(location, { key, seq: 1, revision: randomUUID(), timestamp: Date.now() - hour })
        }
        // Each owner's chunks are in the chunk partition beside its key's live partition.
        for (const key of [...values.keys(), "/hot/x"]) {
          const chunks = yield* Effect.promise(() =>
            rawPartition(files.client, location.table, keyArea(location, key, "chunks"))
          )
          expect(chunks.some((item) => SortKey.decode(item[ValueChunks.ChunkAttr.event]!.B!).key === key)).toBe(true)
        }
        expect(yield* ownersOf(location)).toHaveLength(values.size + 4)
        const swept = yield* sweep(ChunkArea.make(Dynamo.fromClient(files.client), location), 60_000)
        expect(swept).toMatchObject({ owners: values.size + 4, collected: 4 })
        expect(yield* ownersOf(location)).toEqual([...values.keys()].map((key) => `${key}#1`).sort())
        for (const [key, value] of values) expect(same((yield* store.get(key)).value, value)).toBe(true)
      }),
    120_000
  )

  it.live("the layer sweeps periodically", () =>
    Effect.gen(function*() {
      const location = files.freshLocation()
      yield* plantOrphan(location, { key: "/dead", seq: 3, revision: randomUUID(), timestamp: Date.now() - 1000 })
      expect(yield* ownersOf(location)).toEqual(["/dead#3"])
      yield* Layer.build(
        ChunkCollector.layer({ graceMillis: 0, everyMillis: 100 }).pipe(
          Layer.provide(eventTableLayer(location, { client: files.client }))
        )
      )
      let owners: ReadonlyArray<string> = ["/dead#3"]
      const collected = yield* eventually(() => owners.length === 0, 10_000).pipe(
        Effect.race(Effect.forever(Effect.andThen(
          Effect.sleep(100),
          Effect.map(ownersOf(location), (now) => {
            owners = now
          })
        )))
      )
      expect(collected).toBe(true)
    }), 30_000)
})
