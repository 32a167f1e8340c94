/**
 * DynamoDB-only part of the range contract: reads are lazily paged, so they
 * fetch only the 1 MB pages they need (counted as Query requests). What they
 * return is the shared contract (suite/ranges.ts); this checks the I/O.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import type { Item } from "../../../src/domain/Item.ts"
import * as Key from "../../../src/domain/Key.ts"
import type { Store } from "../../../src/programs/store/Store.ts"
import { patterned, recordingClient, sameBytes, uniquePrefix, useTable } from "./harness.ts"

const t = useTable("contract-paging-io")

const keysOf = (items: ReadonlyArray<Item>) => items.map((item) => item.key)

const collect = (store: Store["Service"], options: Parameters<Store["Service"]["items"]>[0]) =>
  Effect.map(Stream.runCollect(store.items(options)), (items) => [...items])

/** A client counting its Query requests, to see how many pages a read really fetched. */
const countingClient = () => {
  const { client, calls } = recordingClient()
  return {
    client,
    reset: () => {
      calls.length = 0
    },
    queries: () => calls.filter((name) => name === "QueryCommand").length
  }
}

describe("paging", () => {
  const valueBytes = 60 * 1024

  it.effect("40 items of 60 KB (several 1 MB pages) come back complete, in order, in both directions, lazily", () =>
    Effect.gen(function*() {
      const { client, reset, queries } = countingClient()
      const store = yield* t.open({ client })
      const p = uniquePrefix("pages")
      const key = (i: number) => `${p}${String(i).padStart(2, "0")}`
      yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) => store.put({ key: key(i), value: patterned(valueBytes, i) }),
        { concurrency: 4 }
      )

      reset()
      const ascending = yield* store.getRange(p, Key.rangeEnd(p))
      expect(queries()).toBeGreaterThanOrEqual(3) // 2.4 MB needs at least three 1 MB pages
      expect(keysOf(ascending)).toEqual(Array.from({ length: 40 }, (_, i) => key(i)))
      for (const [i, item] of ascending.entries()) expect(sameBytes(item.value, patterned(valueBytes, i))).toBe(true)

      const descending = yield* collect(store, { start: p, end: Key.rangeEnd(p), descending: true })
      expect(keysOf(descending)).toEqual(keysOf(ascending).reverse())
      for (const [i, item] of descending.entries()) {
        expect(sameBytes(item.value, patterned(valueBytes, 39 - i))).toBe(true)
      }

      // lazily paged: the first few items need only the first page
      reset()
      const firstTwo = yield* store.items({ start: p, end: Key.rangeEnd(p) }).pipe(Stream.take(2), Stream.runCollect)
      expect(keysOf([...firstTwo])).toEqual([key(0), key(1)])
      expect(queries()).toBe(1)
      reset()
      expect(keysOf(yield* store.getRange(p, Key.rangeEnd(p), { limit: 3 }))).toEqual([key(0), key(1), key(2)])
      expect(queries()).toBe(1)
    }))

  it.effect("a key whose superseded big events span several pages yields only its newest event", () =>
    Effect.gen(function*() {
      const { client, reset, queries } = countingClient()
      const store = yield* t.open({ client })
      const p = uniquePrefix("bigkey")
      yield* store.put({ key: `${p}l`, value: patterned(valueBytes, 1) })
      let last = { key: "", revision: "" }
      for (let version = 0; version < 30; version++) {
        last = yield* store.put({ key: `${p}m`, value: patterned(valueBytes, 100 + version) })
      }
      yield* store.put({ key: `${p}n`, value: patterned(valueBytes, 2) })
      for (const descending of [false, true]) {
        reset()
        const items = yield* collect(store, { start: p, end: Key.rangeEnd(p), descending })
        expect(queries()).toBeGreaterThanOrEqual(2) // 1.9 MB of events
        const expectedKeys = [`${p}l`, `${p}m`, `${p}n`]
        expect(keysOf(items)).toEqual(descending ? [...expectedKeys].reverse() : expectedKeys)
        const m = items.find((item) => item.key === `${p}m`)!
        expect(m.revision).toBe(last.revision)
        expect(sameBytes(m.value, patterned(valueBytes, 129))).toBe(true)
      }
      // a range of just that key, both directions
      expect((yield* store.getRange(`${p}m`, `${p}m`)).map((item) => item.revision)).toEqual([last.revision])
      expect((yield* collect(store, { start: `${p}m`, end: `${p}m`, descending: true })).map((item) => item.revision))
        .toEqual([last.revision])
    }))
})
