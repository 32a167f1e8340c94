/**
 * A reader of history notices removed events: a key's seqs are dense, and compaction only ever removes the oldest
 * (moving them to history, or dropping them when no history is kept), so a seq missing between two stored events
 * means someone deleted an event item. `history` and `getAt` then fail with `HistoryGap` naming the key and the
 * seqs around the hole, instead of answering from a past with a piece cut out.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { deleteRawEvent } from "../support/RawTable.ts"
import { makeClient, openStore, provisionTable } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"

let client: DynamoDBClient
let location: TestTable
beforeAll(async () => {
  client = makeClient()
  location = await Effect.runPromise(provisionTable(client))
})
afterAll(() => client.destroy())

const bytes = (value: string) => new TextEncoder().encode(value)
const text = (value: Uint8Array) => new TextDecoder().decode(value)
const uniqueKey = (label: string) => `/gap-${label}-${randomUUID().slice(0, 8)}`

const deleteEventItem = (key: string, seq: number) => Effect.promise(() => deleteRawEvent(client, location, key, seq))

describe("history with an event removed", () => {
  it.effect("history and getAt fail with HistoryGap naming the hole", () =>
    Effect.gen(function*() {
      const store = yield* openStore(location, { client })
      const key = uniqueKey("middle")
      const revisions: Array<string> = []
      for (const value of ["v1", "v2", "v3", "v4"]) {
        revisions.push((yield* store.put({ key, value: bytes(value) })).revision)
      }
      expect((yield* Stream.runCollect(store.history(key))).map((event) => event.seq)).toEqual([1, 2, 3, 4])

      yield* deleteEventItem(key, 2)
      const history = yield* Effect.flip(Stream.runCollect(store.history(key)))
      expect(history).toMatchObject({ _tag: "HistoryGap", key, after: 1, before: 3 })
      expect(history.message).toContain(key)
      const past = yield* Effect.flip(store.getAt(key, { _tag: "Revision", revision: revisions[2]! }))
      expect(past._tag).toBe("HistoryGap")
      // The current value is what the newest event says; the gap is in the past.
      expect(text((yield* store.get(key)).value)).toBe("v4")
    }))

  it.effect("a history whose oldest events are gone (compaction, retention) has no gap", () =>
    Effect.gen(function*() {
      const store = yield* openStore(location, { client })
      const key = uniqueKey("oldest")
      for (const value of ["v1", "v2", "v3"]) yield* store.put({ key, value: bytes(value) })
      // As compaction with no history kept leaves it: the oldest event gone, the rest dense.
      yield* deleteEventItem(key, 1)
      expect((yield* Stream.runCollect(store.history(key))).map((event) => event.seq)).toEqual([2, 3])
    }))
})
