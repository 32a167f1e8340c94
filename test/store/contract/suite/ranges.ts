/**
 * Contract of getRange and items: inclusive bounds, UTF-8 byte order, limits
 * that count only live items, the newest event per key, both directions, and
 * big values past DynamoDB's 1 MB pages. Run by every backend; where the backend
 * records its requests (DynamoDB), also how many pages a read fetched.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Stream } from "effect"
import { BadParameter } from "../../../../src/domain/Errors.ts"
import type { Item } from "../../../../src/domain/Item.ts"
import * as Key from "../../../../src/domain/Key.ts"
import type { Store } from "../../../../src/programs/store/Store.ts"
import { bytes, patterned, sameBytes, text, uniquePrefix } from "./Backend.ts"
import type { ContractBackend } from "./Backend.ts"

/** ranges: inclusive bounds, UTF-8 byte order, limits counting only live items, newest event per key, both directions */
export const rangesContract = (backend: ContractBackend) =>
  describe(`ranges (${backend.name})`, () => {
    const s = backend.storage("contract-ranges")

    const keysOf = (items: ReadonlyArray<Item>) => items.map((item) => item.key)

    const collect = (store: Store["Service"], options: Parameters<Store["Service"]["items"]>[0]) =>
      Effect.map(Stream.runCollect(store.items(options)), (items) => [...items])

    const putAll = (store: Store["Service"], keys: ReadonlyArray<string>, expires?: number) =>
      Effect.forEach(keys, (key) => store.put({ key, value: bytes(`value of ${key}`), expires }), { concurrency: 8 })

    describe("bounds", () => {
      it.effect("start and end are inclusive; a key extending the end key sorts after it and is excluded", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("bounds")
          const names = ["a", "a/b", "a/b/c", "a/b0", "a/c", "a/c/d", "b", "a/", "a/a"]
          yield* putAll(store, names.map((name) => p + name))
          const range = (start: string, end: string) => Effect.map(store.getRange(p + start, p + end), keysOf)

          expect(yield* range("a/b", "a/b")).toEqual([`${p}a/b`])
          expect(yield* range("a", "a/b")).toEqual([`${p}a`, `${p}a/`, `${p}a/a`, `${p}a/b`])
          expect(yield* range("a/b", "a/c")).toEqual([`${p}a/b`, `${p}a/b/c`, `${p}a/b0`, `${p}a/c`])
          expect(yield* range("a/b/c", "b")).toEqual([`${p}a/b/c`, `${p}a/b0`, `${p}a/c`, `${p}a/c/d`, `${p}b`])
          expect(yield* range("a/bb", "a/bz")).toEqual([])
          // a key not present as a bound: everything between still comes back
          expect(yield* range("a/a0", "a/c/c")).toEqual([`${p}a/b`, `${p}a/b/c`, `${p}a/b0`, `${p}a/c`])
          const descending = yield* collect(store, { start: `${p}a/b`, end: `${p}a/c`, descending: true })
          expect(keysOf(descending)).toEqual([`${p}a/c`, `${p}a/b0`, `${p}a/b/c`, `${p}a/b`])
          const exact = yield* collect(store, { start: `${p}a/b`, end: `${p}a/b`, descending: true })
          expect(keysOf(exact)).toEqual([`${p}a/b`])
          expect(text(exact[0]!.value)).toBe(`value of ${p}a/b`)
        }))

      it.effect("rangeEnd(prefix) covers every key with the prefix and nothing past its end", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("prefix")
          const inside = [`${p}x/`, `${p}x/1`, `${p}x/1/2`, `${p}x/\u{10FFFF}`, `${p}x/\u00e9`]
          const outside = [`${p}x`, `${p}w/z`, `${p}x0a`, `${p}y`]
          yield* putAll(store, [...inside, ...outside])
          const items = yield* store.getRange(`${p}x/`, Key.rangeEnd(`${p}x/`))
          expect(keysOf(items)).toEqual([...inside].sort(Key.compare))
          // rangeEnd is inclusive as in Teleport: the one key equal to it is included too
          yield* store.put({ key: Key.rangeEnd(`${p}x/`), value: bytes("edge") })
          expect(keysOf(yield* store.getRange(`${p}x/`, Key.rangeEnd(`${p}x/`)))).toEqual(
            [...inside].sort(Key.compare).concat(Key.rangeEnd(`${p}x/`))
          )
          // an astral last character
          const astral = `${p}s\u{1F600}`
          yield* putAll(store, [`${astral}/a`, `${astral}`, `${p}s\u{1F601}/a`])
          expect(keysOf(yield* store.getRange(astral, Key.rangeEnd(astral)))).toEqual([astral, `${astral}/a`])
        }))

      it.effect("keys come back in UTF-8 byte order, not UTF-16 order", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("utf8")
          const chars = [
            "a",
            "~",
            "\u007F",
            "\u0080",
            "\u00e9",
            "\u07FF",
            "\u0800",
            "\uD7FF",
            "\uE000",
            "\uFFFF",
            "\u{10000}",
            "\u{1F600}",
            "\u{10FFFF}"
          ]
          const keys = chars.map((c) => `${p}${c}`)
          yield* putAll(store, [...keys].reverse())
          const expected = [...keys].sort(Key.compare)
          expect(expected).not.toEqual([...keys].sort()) // the test means something: UTF-16 order differs
          const ascending = yield* store.getRange(p, Key.rangeEnd(p))
          expect(keysOf(ascending)).toEqual(expected)
          for (const item of ascending) expect(text(item.value)).toBe(`value of ${item.key}`)
          expect(keysOf(yield* collect(store, { start: p, end: Key.rangeEnd(p), descending: true }))).toEqual(
            [...expected].reverse()
          )
          // a range that is empty in UTF-16 order but not in UTF-8 order
          expect(keysOf(yield* store.getRange(`${p}\uFFFF`, `${p}\u{10000}`))).toEqual([`${p}\uFFFF`, `${p}\u{10000}`])
          expect(keysOf(yield* store.getRange(`${p}\uE000`, `${p}\u{1F600}`))).toEqual([
            `${p}\uE000`,
            `${p}\uFFFF`,
            `${p}\u{10000}`,
            `${p}\u{1F600}`
          ])
          // the largest valid key fits as an end bound and sorts last
          expect(keysOf(yield* store.getRange(`${p}\u{10000}`, Key.maxKey)).slice(0, 3)).toEqual([
            `${p}\u{10000}`,
            `${p}\u{1F600}`,
            `${p}\u{10FFFF}`
          ])
        }))
    })

    describe("what counts", () => {
      it.effect("expired items sorted first neither come back nor count against the limit, in both directions", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("limit")
          const now = yield* Clock.currentTimeMillis
          const key = (i: number) => `${p}k${String(i).padStart(2, "0")}`
          // k00..k04 and k15..k19 expire, k05..k14 live; a limit of 3 must skip the expired ones
          yield* putAll(store, [0, 1, 2, 3, 4, 15, 16, 17, 18, 19].map(key), now + 100)
          yield* putAll(store, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14].map(key))
          expect(yield* Effect.map(store.getRange(p, Key.rangeEnd(p)), (items) => items.length)).toBe(20)
          yield* backend.advance(100)
          expect(keysOf(yield* store.getRange(p, Key.rangeEnd(p), { limit: 3 }))).toEqual([key(5), key(6), key(7)])
          expect(keysOf(yield* collect(store, { start: p, end: Key.rangeEnd(p), limit: 3 }))).toEqual([
            key(5),
            key(6),
            key(7)
          ])
          expect(keysOf(yield* collect(store, { start: p, end: Key.rangeEnd(p), limit: 3, descending: true })))
            .toEqual([key(14), key(13), key(12)])
          expect(keysOf(yield* store.getRange(p, Key.rangeEnd(p)))).toEqual(
            [5, 6, 7, 8, 9, 10, 11, 12, 13, 14].map(key)
          )
          // 0 is Teleport's NoLimit
          expect(keysOf(yield* store.getRange(p, Key.rangeEnd(p), { limit: 0 }))).toHaveLength(10)
          expect(keysOf(yield* store.getRange(p, Key.rangeEnd(p), { limit: 1000 }))).toHaveLength(10)

          // deleted keys neither come back nor count
          yield* store.delete(key(5))
          yield* store.delete(key(6))
          yield* store.delete(key(14))
          expect(keysOf(yield* store.getRange(p, Key.rangeEnd(p), { limit: 3 }))).toEqual([key(7), key(8), key(9)])
          expect(keysOf(yield* collect(store, { start: p, end: Key.rangeEnd(p), limit: 2, descending: true })))
            .toEqual([key(13), key(12)])
        }))

      it.effect("several writes per key return only the newest, once; a keep-alive keeps value and revision", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("superseded")
          const now = yield* Clock.currentTimeMillis
          const latest = new Map<string, string>()
          for (const name of ["a", "b", "c", "d"]) {
            for (let version = 1; version <= 4; version++) {
              latest.set(
                `${p}${name}`,
                (yield* store.put({ key: `${p}${name}`, value: bytes(`${name}${version}`) })).revision
              )
            }
          }
          // b: newest event is a keep-alive; c: deleted after its puts; d: newest put expired, older ones did not expire
          yield* store.keepAlive({ key: `${p}b`, revision: "" }, now + 1_000_000)
          yield* store.delete(`${p}c`)
          yield* store.put({ key: `${p}d`, value: bytes("d5"), expires: now + 10 })
          yield* backend.advance(10)
          const ascending = yield* store.getRange(p, Key.rangeEnd(p))
          expect(ascending.map((item) => [item.key, text(item.value), item.revision, item.expires])).toEqual([
            [`${p}a`, "a4", latest.get(`${p}a`), undefined],
            [`${p}b`, "b4", latest.get(`${p}b`), now + 1_000_000]
          ])
          const descending = yield* collect(store, { start: p, end: Key.rangeEnd(p), descending: true })
          expect(descending).toEqual([...ascending].reverse())
        }))

      it.effect("items descending is the reverse of ascending, with and without limits", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("reverse")
          const now = yield* Clock.currentTimeMillis
          for (let i = 0; i < 30; i++) {
            const key = `${p}${String(i).padStart(2, "0")}`
            yield* store.put({ key, value: bytes(`v${i}`), expires: i % 5 === 0 ? now + 5 : undefined })
            if (i % 3 === 0) yield* store.put({ key, value: bytes(`w${i}`) })
            if (i % 7 === 0) yield* store.delete(key)
          }
          yield* backend.advance(5)
          const ascending = yield* collect(store, { start: p, end: Key.rangeEnd(p) })
          const descending = yield* collect(store, { start: p, end: Key.rangeEnd(p), descending: true })
          expect(ascending.length).toBeGreaterThan(15)
          expect(descending).toEqual([...ascending].reverse())
          expect(yield* store.getRange(p, Key.rangeEnd(p))).toEqual(ascending)
          for (const limit of [1, 2, 5, 100]) {
            expect(yield* collect(store, { start: p, end: Key.rangeEnd(p), limit })).toEqual(ascending.slice(0, limit))
            expect(yield* collect(store, { start: p, end: Key.rangeEnd(p), limit, descending: true }))
              .toEqual([...ascending].reverse().slice(0, limit))
          }
        }))

      it.effect("a negative or fractional limit is a BadParameter naming the limit", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          for (const limit of [-1, 1.5, Number.NaN]) {
            const error = yield* Effect.flip(store.getRange("/a", "/b", { limit }))
            expect(error).toBeInstanceOf(BadParameter)
            expect(error).toMatchObject({ field: "limit" })
          }
        }))

      // Contract: the items with start <= key <= end; for start > end that set is empty.
      // Regression (was a bug in src/programs/store/Store.ts items/deleteRange + src/programs/store/Ranges.ts sortKeyRange): the bounds go to DynamoDB
      // unchecked, which rejects BETWEEN with lower > upper, so this fails with StorageFailure (ValidationException).
      it.effect("a reversed range (start after end) is empty or a BadParameter, never a storage failure", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const p = uniquePrefix("reversed")
          yield* putAll(store, [`${p}a`, `${p}b`])
          const outcome = yield* Effect.result(store.getRange(`${p}b`, `${p}a`))
          if (outcome._tag === "Success") expect(outcome.success).toEqual([])
          else expect(outcome.failure._tag).toBe("BadParameter")
        }))
    })

    describe("big values (several of DynamoDB's 1 MB pages)", () => {
      const valueBytes = 60 * 1024

      /**
       * A store instance and a way to check how many pages (Query requests) a read fetched, where the backend does
       * I/O; without I/O (the memory store) the checks hold trivially.
       */
      const openCounting = () =>
        Effect.gen(function*() {
          const recording = s.openRecording === undefined ? undefined : yield* s.openRecording()
          const store = recording?.store ?? (yield* s.open())
          const queries = () => recording?.requests().filter((name) => name === "QueryCommand").length ?? 0
          const since = () => {
            const before = queries()
            return {
              atLeast: (pages: number) => {
                if (recording !== undefined) expect(queries() - before).toBeGreaterThanOrEqual(pages)
              },
              exactly: (pages: number) => {
                if (recording !== undefined) expect(queries() - before).toBe(pages)
              }
            }
          }
          return { store, since }
        })

      it.effect("40 items of 60 KB (several 1 MB pages) come back complete, in order, in both directions, and taken in part", () =>
        Effect.gen(function*() {
          const { store, since } = yield* openCounting()
          const p = uniquePrefix("pages")
          const key = (i: number) => `${p}${String(i).padStart(2, "0")}`
          yield* Effect.forEach(
            Array.from({ length: 40 }, (_, i) => i),
            (i) => store.put({ key: key(i), value: patterned(valueBytes, i) }),
            { concurrency: 4 }
          )

          let mark = since()
          const ascending = yield* store.getRange(p, Key.rangeEnd(p))
          mark.atLeast(3) // 2.4 MB needs at least three 1 MB pages
          expect(keysOf(ascending)).toEqual(Array.from({ length: 40 }, (_, i) => key(i)))
          for (const [i, item] of ascending.entries()) {
            expect(sameBytes(item.value, patterned(valueBytes, i))).toBe(true)
          }

          const descending = yield* collect(store, { start: p, end: Key.rangeEnd(p), descending: true })
          expect(keysOf(descending)).toEqual(keysOf(ascending).reverse())
          for (const [i, item] of descending.entries()) {
            expect(sameBytes(item.value, patterned(valueBytes, 39 - i))).toBe(true)
          }

          // lazily paged: the first few items, by taking from the stream or by a limit, need only the first page
          mark = since()
          const firstTwo = yield* store.items({ start: p, end: Key.rangeEnd(p) }).pipe(
            Stream.take(2),
            Stream.runCollect
          )
          expect(keysOf([...firstTwo])).toEqual([key(0), key(1)])
          if (backend.pagesLazily !== false) mark.exactly(1)
          mark = since()
          expect(keysOf(yield* store.getRange(p, Key.rangeEnd(p), { limit: 3 }))).toEqual([key(0), key(1), key(2)])
          if (backend.pagesLazily !== false) mark.exactly(1)
        }))

      it.effect("a key whose superseded big events span several pages yields only its newest event", () =>
        Effect.gen(function*() {
          const { store, since } = yield* openCounting()
          const p = uniquePrefix("bigkey")
          yield* store.put({ key: `${p}l`, value: patterned(valueBytes, 1) })
          let last = { key: "", revision: "" }
          for (let version = 0; version < 30; version++) {
            last = yield* store.put({ key: `${p}m`, value: patterned(valueBytes, 100 + version) })
          }
          yield* store.put({ key: `${p}n`, value: patterned(valueBytes, 2) })
          for (const descending of [false, true]) {
            const mark = since()
            const items = yield* collect(store, { start: p, end: Key.rangeEnd(p), descending })
            mark.atLeast(2) // 1.9 MB of events
            const expectedKeys = [`${p}l`, `${p}m`, `${p}n`]
            expect(keysOf(items)).toEqual(descending ? [...expectedKeys].reverse() : expectedKeys)
            const m = items.find((item) => item.key === `${p}m`)!
            expect(m.revision).toBe(last.revision)
            expect(sameBytes(m.value, patterned(valueBytes, 129))).toBe(true)
          }
          // a range of just that key, both directions
          expect((yield* store.getRange(`${p}m`, `${p}m`)).map((item) => item.revision)).toEqual([last.revision])
          expect(
            (yield* collect(store, { start: `${p}m`, end: `${p}m`, descending: true })).map((item) => item.revision)
          )
            .toEqual([last.revision])
        }))
    })
  })
