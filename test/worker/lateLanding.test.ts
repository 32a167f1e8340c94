/**
 * A late landing into a freed seq (see `WriteFence`: a frozen writer's append that arrives after compaction moved
 * the event that held its seq) must neither replace that event's history copy nor be left live under the key's
 * newer events. The chaos campaign found both: a late put built on by a newer write stayed live, compaction archived
 * it over the acknowledged `expire` it collided with; and compaction working from the stream's copy of the genuine
 * event, failing to remove it (another compactor had), buried the key's tombstone over the late put, which then
 * read as the key's value, and writers numbered their events from it into seqs already used.
 */
import { PutItemCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Stream } from "effect"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr, attributesOf } from "../../src/infra/EventRecord.ts"
import { HistoryArea } from "../../src/infra/HistoryArea.ts"
import { historyPartition } from "../../src/infra/HistoryRecord.ts"
import { compactEvents, compactKeyRead, defaultCompactionOptions } from "../../src/programs/worker/Compaction.ts"
import { rawPartition } from "../support/RawTable.ts"
import { eventTableLayer, openCompaction, openStore } from "../support/TestStore.ts"
import { archivedEvents, bytes, freshEnv, liveEvents } from "./support.ts"
import type { Env } from "./support.ts"

/** Writes `late` as an event at `seq` of its key in the live range: `item` with another revision. */
const landLate = (env: Env, item: Record<string, AttributeValue>) =>
  Effect.promise(() =>
    env.client.send(
      new PutItemCommand({
        TableName: env.location.table,
        Item: { ...item, [Attr.partition]: { S: env.location.namespace }, [Attr.revision]: { S: crypto.randomUUID() } }
      })
    )
  )

describe("a late landing into a freed seq", () => {
  it.live("never replaces the archived event at that seq, and leaves the live range", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("late-archive")
      const store = yield* openStore(env.location, { client: env.client })
      const compaction = yield* openCompaction(env.location, env.client)
      const key = "/late/archived"
      const revisions: Array<string> = []
      for (const value of ["v1", "v2", "v3"]) revisions.push((yield* store.put({ key, value: bytes(value) })).revision)
      yield* compaction.all(() => Effect.void, { settleMillis: 0 })
      expect((yield* archivedEvents(env)).map((event) => event.seq)).toEqual([1, 2])

      // The late landing: another event at seq 2, written live after compaction freed the seq (a frozen writer's
      // append, already built on by seq 3, so its writer's check leaves it where it landed).
      const history = yield* Effect.promise(() =>
        rawPartition(env.client, env.location.table, historyPartition(env.location))
      )
      const second = history.find((item) => SortKey.decode(item[Attr.sort]!.B!).seq === 2)!
      const late = {
        ...second,
        [Attr.partition]: { S: env.location.namespace },
        [Attr.revision]: { S: crypto.randomUUID() }
      }
      yield* Effect.promise(() => env.client.send(new PutItemCommand({ TableName: env.location.table, Item: late })))
      expect((yield* liveEvents(env)).map((event) => event.seq)).toEqual([2, 3])

      yield* compaction.all(() => Effect.void, { settleMillis: 0 })
      expect((yield* archivedEvents(env)).map((event) => [event.seq, event.revision])).toEqual([
        [1, revisions[0]],
        [2, revisions[1]]
      ])
      expect((yield* liveEvents(env)).map((event) => [event.seq, event.revision])).toEqual([[3, revisions[2]]])
      const past = [...yield* Stream.runCollect(store.history(key))]
      expect(past.map((event) => event.revision)).toEqual(revisions)
    }), 30_000)

  it.live(
    "is never left live under a tombstone that compaction buries from a stale copy of the key's events",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("late-buried")
        const store = yield* openStore(env.location, { client: env.client })
        const context = yield* Layer.build(
          HistoryArea.layer.pipe(Layer.provideMerge(eventTableLayer(env.location, { client: env.client })))
        )
        const area = Context.get(context, HistoryArea)
        const options = { ...defaultCompactionOptions, settleMillis: 0 }
        const key = "/late/buried"
        yield* store.put({ key, value: bytes("v1") })
        yield* store.put({ key, value: bytes("v2") })
        yield* store.delete(key)
        // What the stream delivered, as the worker keeps it: seqs 1, 2 and the tombstone 3.
        const delivered = [...yield* Stream.runCollect(area.upTo(key, 3))]
        expect(delivered.map((stored) => stored.seq)).toEqual([1, 2, 3])
        // Another compactor moves seqs 1 and 2 first; a frozen writer's put lands in the freed seq 2.
        yield* compactEvents(area, key, delivered, 3, false, options)
        expect((yield* liveEvents(env)).map((event) => event.seq)).toEqual([3])
        const history = yield* Effect.promise(() =>
          rawPartition(env.client, env.location.table, historyPartition(env.location))
        )
        yield* landLate(env, history.find((item) => SortKey.decode(item[Attr.sort]!.B!).seq === 2)!)

        // Compaction from the delivered copies, then again as the worker does when told to come back.
        let outcome = yield* compactEvents(area, key, delivered, 3, true, options)
        for (let turn = 0; turn < 3 && (outcome.dueAt !== undefined || outcome.gone === undefined); turn++) {
          outcome = yield* compactKeyRead(area, key, 3, true, options)
        }
        expect(yield* liveEvents(env)).toEqual([])
        // A process that never saw the key reads it from the table.
        const reader = yield* openStore(env.location, { client: env.client })
        expect((yield* Effect.flip(reader.get(key)))._tag).toBe("NotFound")
        const past = [...yield* Stream.runCollect(reader.history(key))]
        expect(past.map((event) => `${event.seq}:${event.op}`)).toEqual(["1:put", "2:put", "3:delete"])
        expect(past.map((event) => event.revision)).toEqual(
          delivered.map((stored) => attributesOf(stored.item)[Attr.revision]?.S)
        )
      }),
    30_000
  )
})
