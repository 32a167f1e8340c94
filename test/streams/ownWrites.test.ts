/**
 * A watcher in the writing process gets that process's writes at acknowledgement, without waiting for the
 * stream: the store's watches read a scripted stream that brings nothing until the test appends the real
 * records (written on DynamoDB Local and read back from its stream), so anything delivered before that came in
 * process. Each key's order holds under other processes' writes, and the stream's copy is dropped as a repeat.
 */
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Stream } from "effect"
import { Attr } from "../../src/infra/EventRecord.ts"
import { listShards } from "../../src/infra/streams/StreamReader.ts"
import type { StreamRecord } from "../../src/infra/streams/StreamsApi.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import { defaultStoreOptions, Store } from "../../src/programs/store/Store.ts"
import type { WatchEvent } from "../../src/programs/store/Watch.ts"
import type { TestTable } from "../support/TestStore.ts"
import { eventTableLayer, makeClient, openStore, provisionTable, streamsConfig } from "../support/TestStore.ts"
import { eventually } from "./Harness.ts"
import { makeScriptedStreams } from "./ScriptedStreams.ts"

const bytes = (text: string) => new TextEncoder().encode(text)
const decoder = new TextDecoder()

/** What a watch delivered after `Init`, as `value@seq` (or `Delete@seq`). */
const changes = (seen: ReadonlyArray<WatchEvent>) =>
  seen.flatMap((event) =>
    event._tag === "Init"
      ? []
      : [`${event._tag === "Put" ? decoder.decode(event.item.value) : event._tag}@${event.seq}`]
  )

/** The real stream records of the namespace's events, by seq, once DynamoDB Local's stream holds `n` of them. */
const realRecords = (location: TestTable, n: number) =>
  Effect.gen(function*() {
    const real = fromClients(makeClient(), new DynamoDBStreamsClient(streamsConfig()))
    const arn = (yield* real.latestStreamArn(location.table))!
    const bySeq = new Map<number, StreamRecord>()
    for (let attempt = 0; attempt < 100 && bySeq.size < n; attempt++) {
      for (const shard of yield* listShards(arn).pipe(Effect.provideService(StreamsApi, real))) {
        let iterator = yield* real.getShardIterator(arn, shard.shardId, { _tag: "TrimHorizon" })
        for (let pages = 0; iterator !== undefined && pages < 20; pages++) {
          const page = yield* real.getRecords(shard.shardId, iterator)
          for (const record of page.records) {
            const image = record.newImage
            if (image?.[Attr.partition]?.S !== location.namespace || image[Attr.sort]?.B === undefined) continue
            bySeq.set(Number(image[Attr.seq]?.N), record)
          }
          if (page.records.length === 0) break
          iterator = page.nextIterator
        }
      }
      if (bySeq.size < n) yield* Effect.sleep(100)
    }
    expect(bySeq.size).toBe(n)
    return bySeq
  })

/** A store whose watches read a scripted stream (shard "A"), a second store as another process, and a watch. */
const setup = Effect.gen(function*() {
  const client = makeClient()
  const location = yield* provisionTable(client).pipe(Effect.orDie)
  const script = makeScriptedStreams({ table: location.table })
  script.addShard("A")
  const context = yield* Layer.build(
    Store.layer(defaultStoreOptions).pipe(
      Layer.provide(Layer.succeed(StreamsApi, script.api)),
      Layer.provideMerge(eventTableLayer(location, { client }))
    )
  )
  const writer = Context.get(context, Store)
  const other = yield* openStore(location, { client })
  const seen: Array<WatchEvent> = []
  yield* writer.watch({ prefixes: ["/k"] }).pipe(
    Stream.runForEach((event) => Effect.sync(() => seen.push(event))),
    Effect.forkScoped
  )
  expect(yield* eventually(() => seen.length > 0)).toBe(true)
  expect(seen[0]).toEqual({ _tag: "Init" })
  /** Hands the real records of these seqs to the scripted stream, in this order. */
  const stream = (records: ReadonlyMap<number, StreamRecord>, seqs: ReadonlyArray<number>) =>
    script.appendRecords("A", seqs.map((seq) => records.get(seq)!))
  return { location, writer, other, seen, stream }
})

describe("own writes delivered to the writing process's watchers at acknowledgement", () => {
  it.live("a write reaches the watcher before the stream brings it, and its stream record is dropped", () =>
    Effect.gen(function*() {
      const { location, seen, stream, writer } = yield* setup
      yield* writer.put({ key: "/k", value: bytes("a1") })
      expect(yield* eventually(() => changes(seen).length >= 1, 2000)).toBe(true)
      yield* writer.put({ key: "/k", value: bytes("a2") })
      yield* writer.delete("/k")
      expect(yield* eventually(() => changes(seen).length >= 3, 2000)).toBe(true)
      // Nothing was in the stream yet: all of it came at acknowledgement.
      expect(changes(seen)).toEqual(["a1@1", "a2@2", "Delete@3"])
      stream(yield* realRecords(location, 3), [1, 2, 3, 1])
      yield* Effect.sleep(1000)
      expect(changes(seen)).toEqual(["a1@1", "a2@2", "Delete@3"])
    }))

  it.live("interleaved with another process's writes, each key's order holds and every event comes once", () =>
    Effect.gen(function*() {
      const { location, other, seen, stream, writer } = yield* setup
      yield* writer.put({ key: "/k", value: bytes("a1") })
      yield* other.put({ key: "/k", value: bytes("b2") })
      // The writer's cached state is seq 1: it loses seq 2 to the other process and appends at 3.
      yield* writer.put({ key: "/k", value: bytes("a3") })
      yield* writer.put({ key: "/k", value: bytes("a4") })
      yield* Effect.sleep(500)
      // Seq 2 has not reached this process: 3 and 4 wait for the stream rather than overtake it.
      expect(changes(seen)).toEqual(["a1@1"])
      const records = yield* realRecords(location, 4)
      // Out of order, with repeats: the stream brings 3 first (the gap to 2 is read from the table), then 4, 2, 1.
      stream(records, [3])
      expect(yield* eventually(() => changes(seen).length >= 3, 5000)).toBe(true)
      stream(records, [4, 2, 1])
      expect(yield* eventually(() => changes(seen).length >= 4, 5000)).toBe(true)
      // With every event up to 4 delivered, the next own write goes at acknowledgement again.
      yield* writer.put({ key: "/k", value: bytes("a5") })
      expect(yield* eventually(() => changes(seen).length >= 5, 2000)).toBe(true)
      stream(yield* realRecords(location, 5), [5, 3])
      yield* Effect.sleep(1000)
      expect(changes(seen)).toEqual(["a1@1", "b2@2", "a3@3", "a4@4", "a5@5"])
    }))

  it.live("another process's write of a key never seen since the watch began waits for the stream", () =>
    Effect.gen(function*() {
      const { location, other, seen, stream, writer } = yield* setup
      yield* other.put({ key: "/k", value: bytes("b1") })
      yield* writer.put({ key: "/k", value: bytes("a2") })
      yield* Effect.sleep(500)
      // Seq 1 may have been written after the watch began: the writer's seq 2 must not come before it.
      expect(changes(seen)).toEqual([])
      stream(yield* realRecords(location, 2), [1, 2, 2])
      expect(yield* eventually(() => changes(seen).length >= 2, 5000)).toBe(true)
      yield* Effect.sleep(500)
      expect(changes(seen)).toEqual(["b1@1", "a2@2"])
    }))
})
