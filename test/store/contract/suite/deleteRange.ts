/**
 * Contract of deleteRange: every live item of the inclusive range is deleted
 * exactly once and counted; nothing outside the range, and nothing already
 * deleted or expired, is touched or counted.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import * as Key from "../../../../src/domain/Key.ts"
import type { Store } from "../../../../src/programs/store/Store.ts"
import { bytes, patterned, uniquePrefix } from "./Backend.ts"
import type { ContractBackend } from "./Backend.ts"

/** deleteRange: every live item of the inclusive range deleted once and counted, nothing else touched */
export const deleteRangeContract = (backend: ContractBackend) =>
  describe(`deleteRange (${backend.name})`, () => {
    const s = backend.storage("contract-delete-range")

    const numbered = (prefix: string, count: number) =>
      Array.from({ length: count }, (_, i) => `${prefix}k${String(i).padStart(3, "0")}`)

    const putAll = (store: Store["Service"], keys: ReadonlyArray<string>, expires?: number) =>
      Effect.forEach(keys, (key) => store.put({ key, value: bytes(`v ${key}`), expires }), {
        concurrency: 16,
        discard: true
      })

    const liveKeys = (store: Store["Service"], prefix: string) =>
      Effect.map(store.getRange(prefix, Key.rangeEnd(prefix)), (items) => items.map((item) => item.key))

    describe("deleteRange", () => {
      it.effect("deletes 150 keys, returns the count, and leaves keys just outside both ends", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("many")
          const inside = numbered(p, 150)
          // just below the start: a prefix of it and a key sorting right before it;
          // just above the end: a key extending it and the next key
          const outside = [`${p}k`, `${p}k0`, `${p}j\u{10FFFF}`, `${p}k149/x`, `${p}k1490`, `${p}k15`]
          yield* putAll(store, [...inside, ...outside])
          // a few keys with several events each: still one delete, counted once
          for (const key of inside.slice(0, 5)) yield* store.put({ key, value: bytes("newer") })

          const deleted = yield* store.deleteRange(inside[0]!, inside[149]!)
          expect(deleted).toBe(150)
          expect(yield* liveKeys(store, p)).toEqual([...outside].sort(Key.compare))
          const insideOps = yield* Effect.forEach(inside, (key) => s.ops(key), { concurrency: 16 })
          for (const ops of insideOps) {
            expect(ops.at(-1)).toBe("delete")
            expect(ops.filter((op) => op === "delete")).toHaveLength(1)
          }
          for (const key of outside) expect(yield* s.ops(key)).toEqual(["put"])

          // nothing left to delete: 0, and nothing written
          const before = yield* s.snapshot()
          expect(yield* store.deleteRange(inside[0]!, inside[149]!)).toBe(0)
          expect(yield* s.snapshot()).toBe(before)
        }))

      it.effect("skips already deleted and expired items, neither counting nor writing them", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("skip")
          const keys = numbered(p, 120)
          const now = yield* Clock.currentTimeMillis
          const expiring = keys.filter((_, i) => i % 4 === 1)
          const deletedBefore = keys.filter((_, i) => i % 4 === 2)
          const survivingExpiry = keys.filter((_, i) => i % 4 === 3)
          yield* putAll(store, keys.filter((_, i) => i % 4 === 0 || i % 4 === 2))
          yield* putAll(store, expiring, now + 50)
          yield* putAll(store, survivingExpiry, now + 1_000_000)
          yield* Effect.forEach(deletedBefore, (key) => store.delete(key), { concurrency: 16, discard: true })
          yield* backend.advance(50)

          const deleted = yield* store.deleteRange(p, Key.rangeEnd(p))
          expect(deleted).toBe(60) // i % 4 === 0 and i % 4 === 3
          expect(yield* liveKeys(store, p)).toEqual([])
          for (const key of deletedBefore) expect(yield* s.ops(key)).toEqual(["put", "delete"])
          for (const key of expiring) expect((yield* s.ops(key)).filter((op) => op === "delete")).toEqual([])
          for (const key of survivingExpiry) expect(yield* s.ops(key)).toEqual(["put", "delete"])
          // the expired ones stay absent, and their keys can be created again
          const again = yield* store.create({ key: expiring[0]!, value: bytes("again") })
          expect(again.key).toBe(expiring[0])
        }))

      it.effect("an item expiring exactly now is not deleted; one expiring 1 ms later is", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("edge")
          const now = yield* Clock.currentTimeMillis
          yield* store.put({ key: `${p}a`, value: bytes("a"), expires: now + 10 })
          yield* store.put({ key: `${p}b`, value: bytes("b"), expires: now + 11 })
          yield* backend.advance(10)
          expect(yield* store.deleteRange(p, Key.rangeEnd(p))).toBe(1)
          // deleteRange wrote nothing for the expired one (an expiry timer, where the store has one, recorded its expiry)
          expect(yield* s.ops(`${p}a`)).toEqual(backend.expiresWhenDue ? ["put", "expire"] : ["put"])
          expect(yield* s.ops(`${p}b`)).toEqual(["put", "delete"])
        }))

      it.effect("bounds are inclusive and compared as UTF-8 bytes", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("utf8")
          const keys = ["a", "\u00e9", "\uFFFF", "\u{10000}", "\u{1F600}", "\u{10FFFF}"].map((c) => p + c)
          yield* putAll(store, keys)
          expect(yield* store.deleteRange(`${p}\uFFFF`, `${p}\u{1F600}`)).toBe(3)
          expect(yield* liveKeys(store, p)).toEqual([`${p}a`, `${p}\u00e9`, `${p}\u{10FFFF}`])
          expect(yield* store.deleteRange(`${p}a`, `${p}a`)).toBe(1)
          expect(yield* liveKeys(store, p)).toEqual([`${p}\u00e9`, `${p}\u{10FFFF}`])
        }))

      it.effect("a range spanning several 1 MB pages is deleted completely", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("pages")
          const keys = numbered(p, 30)
          yield* Effect.forEach(keys, (key, i) => store.put({ key, value: patterned(60 * 1024, i) }), {
            concurrency: 4,
            discard: true
          })
          yield* store.put({ key: keys[10]!, value: patterned(60 * 1024, 99) })
          expect(yield* store.deleteRange(p, Key.rangeEnd(p))).toBe(30)
          expect(yield* liveKeys(store, p)).toEqual([])
          for (const key of keys) expect((yield* s.ops(key)).at(-1)).toBe("delete")
        }))

      it.effect("two store instances deleting the same range concurrently delete each key once, counting it once in total", () =>
        Effect.gen(function*() {
          const one = yield* s.open()
          const two = yield* s.open()
          const p = uniquePrefix("race")
          const keys = numbered(p, 110)
          yield* putAll(one, keys)
          const [a, b] = yield* Effect.all([one.deleteRange(p, Key.rangeEnd(p)), two.deleteRange(p, Key.rangeEnd(p))], {
            concurrency: 2
          })
          expect(a + b).toBe(110)
          expect(yield* liveKeys(two, p)).toEqual([])
          for (const key of keys) expect(yield* s.ops(key)).toEqual(["put", "delete"])
        }))
    })
  })
