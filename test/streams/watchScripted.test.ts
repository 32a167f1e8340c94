/**
 * store.watch over topologies DynamoDB Local cannot produce: real, encrypted
 * event records (written by a store on DynamoDB Local and read back from its
 * stream) replayed into scripted shards that split, close and get trimmed.
 */
import { DeleteItemCommand } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Stream } from "effect"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { HistoryArea } from "../../src/infra/HistoryArea.ts"
import { listShards } from "../../src/infra/streams/StreamReader.ts"
import type { StreamRecord } from "../../src/infra/streams/StreamsApi.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import type { WatchEvent, WatchOptions } from "../../src/programs/store/Watch.ts"
import { Watches } from "../../src/programs/store/Watch.ts"
import { WriteAcks } from "../../src/programs/store/WriteAcks.ts"
import { eventTableLayer, makeClient, openStore, provisionTable, streamsConfig } from "../support/TestStore.ts"
import { eventually } from "./Harness.ts"
import type { ScriptedStreams } from "./ScriptedStreams.ts"
import { makeScriptedStreams } from "./ScriptedStreams.ts"

const bytes = (text: string) => new TextEncoder().encode(text)
const decoder = new TextDecoder()
type Changed = Exclude<WatchEvent, { _tag: "Init" }>
const show = (e: WatchEvent) =>
  e._tag === "Init" ? "Init" : e._tag === "Put" ? `${decoder.decode(e.item.value)}` : `${e._tag} ${e.key}#${e.seq}`

/**
 * A table with `n` puts of key `/s` (values e1..en) written through a real store, their stream
 * records as DynamoDB Local delivered them, and a Watches service over a scripted stream.
 */
const setup = (n: number) =>
  Effect.gen(function*() {
    const client = makeClient()
    const location = yield* provisionTable(client).pipe(Effect.orDie)
    const store = yield* openStore(location, { client })
    for (let i = 1; i <= n; i++) yield* store.put({ key: "/s", value: bytes(`e${i}`) })
    const real = fromClients(client, new DynamoDBStreamsClient(streamsConfig()))
    const arn = (yield* real.latestStreamArn(location.table))!
    const isEvent = (r: StreamRecord) =>
      r.newImage?.[Attr.partition]?.S === location.namespace && r.newImage[Attr.sort]?.B !== undefined
    let events: Array<StreamRecord> = []
    for (let attempt = 0; attempt < 50 && events.length < n; attempt++) {
      const records: Array<StreamRecord> = []
      for (const shard of yield* listShards(arn).pipe(Effect.provideService(StreamsApi, real))) {
        let iterator = yield* real.getShardIterator(arn, shard.shardId, { _tag: "TrimHorizon" })
        for (let pages = 0; iterator !== undefined && pages < 20; pages++) {
          const page = yield* real.getRecords(shard.shardId, iterator)
          records.push(...page.records)
          if (page.records.length === 0) break
          iterator = page.nextIterator
        }
      }
      events = records.filter(isEvent)
      if (events.length < n) yield* Effect.sleep(100)
    }
    expect(events).toHaveLength(n)
    const script = makeScriptedStreams({ table: location.table })
    const context = yield* Layer.build(
      Watches.layer.pipe(
        Layer.provide(HistoryArea.layer),
        Layer.provide(WriteAcks.layer),
        Layer.provide(Layer.succeed(StreamsApi, script.api)),
        Layer.provideMerge(eventTableLayer(location, { client }))
      )
    )
    return { watches: Context.get(context, Watches), script, events, client, location }
  })

const startWatch = (watches: Watches["Service"], options?: WatchOptions) =>
  Effect.gen(function*() {
    const seen: Array<WatchEvent> = []
    const state = { error: undefined as unknown, done: false }
    const fiber = yield* watches.watch(options).pipe(
      Stream.runForEach((event) => Effect.sync(() => seen.push(event))),
      Effect.catch((error) => Effect.sync(() => (state.error = error))),
      Effect.ensuring(Effect.sync(() => (state.done = true))),
      Effect.forkScoped
    )
    expect(yield* eventually(() => seen.length > 0)).toBe(true)
    expect(seen[0]).toEqual({ _tag: "Init" })
    return { seen, state, fiber }
  })

const values = (seen: ReadonlyArray<WatchEvent>) => seen.filter((e): e is Changed => e._tag !== "Init").map(show)

/** Appends the `i`th real event (1-based) to a scripted shard. */
const put = (script: ScriptedStreams, events: ReadonlyArray<StreamRecord>, shardId: string, i: number) =>
  script.appendRecords(shardId, [events[i - 1]!])

describe("store.watch over scripted shard topologies", () => {
  it.live("open shards from the latest record, split children from their first, parents before children", () =>
    Effect.gen(function*() {
      const { watches, script, events } = yield* setup(5)
      script.addShard("A")
      put(script, events, "A", 1) // before the watch: not delivered
      const watch = yield* startWatch(watches)
      put(script, events, "A", 2)
      script.split("A", "B")
      put(script, events, "B", 3)
      script.split("B", "C")
      put(script, events, "C", 4)
      put(script, events, "C", 5)
      expect(yield* eventually(() => values(watch.seen).length >= 4)).toBe(true)
      yield* Effect.sleep(300)
      expect(values(watch.seen)).toEqual(["e2", "e3", "e4", "e5"])
      const positions = script.calls.filter((c) => c.op === "getShardIterator").map((c) =>
        `${c.shardId}:${c.position?._tag}`
      )
      expect(positions).toEqual(["A:Latest", "B:TrimHorizon", "C:TrimHorizon"])
    }))

  it.live("per-key order across sibling shards: a repeated record is delivered once, a skipped seq is read from the table", () =>
    Effect.gen(function*() {
      const { watches, script, events } = yield* setup(4)
      script.addShard("A")
      const watch = yield* startWatch(watches)
      put(script, events, "A", 1)
      put(script, events, "A", 1) // a repeated record (a retried read)
      expect(yield* eventually(() => values(watch.seen).length >= 1)).toBe(true)
      // The partition splits by sort key: the key's next events land in both children.
      script.split("A", "B", "C")
      put(script, events, "B", 3)
      expect(yield* eventually(() => values(watch.seen).includes("e3"))).toBe(true)
      put(script, events, "C", 2) // arrives after e3 was delivered: already delivered from the table
      put(script, events, "C", 4)
      expect(yield* eventually(() => values(watch.seen).includes("e4"))).toBe(true)
      yield* Effect.sleep(300)
      expect(values(watch.seen)).toEqual(["e1", "e2", "e3", "e4"])
      expect(watch.seen.filter((e): e is Changed => e._tag !== "Init").map((e) => e.seq)).toEqual([1, 2, 3, 4])
    }))

  it.live("a watch that starts after a key changed unwatched gets the key's next event, not its past as a gap", () =>
    Effect.gen(function*() {
      const { watches, script, events } = yield* setup(6)
      script.addShard("A")
      const other = yield* startWatch(watches, { prefixes: ["/other/"] }) // keeps the shared reader running
      const first = yield* startWatch(watches, { prefixes: ["/s"] })
      put(script, events, "A", 1)
      expect(yield* eventually(() => values(first.seen).includes("e1"))).toBe(true)
      yield* Fiber.interrupt(first.fiber)
      for (let i = 2; i <= 5; i++) put(script, events, "A", i) // nobody watches /s meanwhile
      yield* Effect.sleep(300)
      const later = yield* startWatch(watches, { prefixes: ["/s"] })
      put(script, events, "A", 6)
      expect(yield* eventually(() => values(later.seen).includes("e6"))).toBe(true)
      yield* Effect.sleep(200)
      expect(values(later.seen)).toEqual(["e6"])
      expect(other.state.error).toBeUndefined()
    }))

  it.live("when a key's skipped events are no longer stored, that key's watchers fail with WatchGap and the others go on", () =>
    Effect.gen(function*() {
      const { watches, script, events, client, location } = yield* setup(3)
      script.addShard("A")
      const watch = yield* startWatch(watches, { prefixes: ["/s"] })
      const bystander = yield* startWatch(watches, { prefixes: ["/other/"] })
      put(script, events, "A", 1)
      expect(yield* eventually(() => values(watch.seen).includes("e1"))).toBe(true)
      // e2 leaves the table (as compaction with retention "none" would) and never comes through the stream.
      yield* Effect.promise(() =>
        client.send(
          new DeleteItemCommand({
            TableName: location.table,
            Key: {
              [Attr.partition]: { S: location.namespace },
              [Attr.sort]: { B: SortKey.encode("/s", 2) }
            }
          })
        )
      )
      put(script, events, "A", 3)
      expect(yield* eventually(() => watch.state.done)).toBe(true)
      expect(watch.state.error as { _tag?: string; key?: string }).toMatchObject({ _tag: "WatchGap", key: "/s" })
      expect(values(watch.seen)).toEqual(["e1"])
      expect(bystander.state.done).toBe(false)
    }))

  // Regression: Watch.ts liveCoordinator treats every shard closed when the resumed watch starts and
  // absent from `resumeFrom.shards` as finished (isFinished, line 108; acquire, line 104). A shard
  // that split off the resumed position's shard after that position and closed since (B below)
  // is skipped, so its events are missed although resumeFrom promises none is.
  it.live("resumeFrom after the shard split twice delivers every later event, including the closed middle shard's", () =>
    Effect.gen(function*() {
      const { watches, script, events } = yield* setup(5)
      script.addShard("A")
      const first = yield* startWatch(watches)
      put(script, events, "A", 1)
      put(script, events, "A", 2)
      expect(yield* eventually(() => values(first.seen).length >= 2)).toBe(true)
      const position = (first.seen[2] as Changed).position
      yield* Fiber.interrupt(first.fiber)
      put(script, events, "A", 3)
      script.split("A", "B")
      put(script, events, "B", 4)
      script.split("B", "C")
      put(script, events, "C", 5)
      const resumed = yield* startWatch(watches, { resumeFrom: position })
      yield* eventually(() => values(resumed.seen).includes("e5"))
      yield* Effect.sleep(300)
      expect(values(resumed.seen)).toEqual(["e3", "e4", "e5"])
    }))

  // Regression: a watch resumed from a position whose records were trimmed used to skip them silently;
  // the contract ("from then on nothing is missed", resumeFrom "none is skipped") needs a failure here.
  it.live("a resumed watch whose position was trimmed away fails instead of silently skipping events", () =>
    Effect.gen(function*() {
      const { watches, script, events } = yield* setup(4)
      script.addShard("A")
      const first = yield* startWatch(watches)
      put(script, events, "A", 1)
      expect(yield* eventually(() => values(first.seen).length >= 1)).toBe(true)
      const position = (first.seen[1] as Changed).position
      yield* Fiber.interrupt(first.fiber)
      const [, e3] = put(script, events, "A", 2).concat(put(script, events, "A", 3))
      put(script, events, "A", 4)
      script.trimThrough(e3!) // e1..e3 are gone: e2 and e3 can never be delivered
      const resumed = yield* startWatch(watches, { resumeFrom: position })
      yield* eventually(() => resumed.state.done)
      // It fails with the typed gap error rather than going on without e2 and e3.
      expect(values(resumed.seen)).toEqual([])
      expect(resumed.state.done).toBe(true)
      expect(JSON.stringify(resumed.state.error)).toContain("WatchGap")
    }))

  // Regression: Watches.layer says "the shared reader runs while any watch does",
  // but startShared forks it into the layer's scope: it keeps polling (GetRecords) after the last
  // watch closed, until the whole store closes, holding one of the two readers DynamoDB allows per shard.
  it.live("the shared reader stops polling once the last watch has closed", () =>
    Effect.gen(function*() {
      const { watches, script } = yield* setup(1)
      script.addShard("A")
      const watch = yield* startWatch(watches)
      yield* Fiber.interrupt(watch.fiber)
      yield* Effect.sleep(300)
      const before = script.count("getRecords")
      yield* Effect.sleep(1_000)
      expect(script.count("getRecords") - before).toBe(0)
    }))
})
