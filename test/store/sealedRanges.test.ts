/**
 * Ranges that reach into sealed prefixes (see `SealedKeys`), mixed with clear keys around them: answered in real-key
 * order in both directions, with limits, from bounds inside or outside the sealed prefix; a sealed prefix holding
 * more live keys than the store sorts in memory is `SealedRangeTooLarge`, while a range inside one segment is not
 * bound by it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { SealedRangeTooLarge } from "../../src/domain/Errors.ts"
import * as Key from "../../src/domain/Key.ts"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import { openStore, tablePerFile } from "../support/TestStore.ts"

const { client, freshLocation } = tablePerFile("sealranges")
const bytes = (value: string) => new TextEncoder().encode(value)
const sealed: ReadonlyArray<SealedPrefix> = [
  { prefix: "/s/", seal: "rest" },
  { prefix: "/u/", seal: "segment" }
]

/** Keys in UTF-8 byte order: clear ones around and between the two sealed prefixes, sealed ones inside them. */
const ordered = [
  "/a",
  "/s",
  "/s/",
  "/s/a",
  "/s/a/b",
  "/s/b",
  "/s/é",
  "/s/ﬀ",
  "/s/𝄞",
  "/s0",
  "/t",
  "/u/al/x",
  "/u/al/y",
  "/u/alice/x",
  "/u/bob",
  "/u/bob/x",
  "/v"
]

describe("ranges over sealed prefixes", () => {
  it.live("answer in real-key order, both directions, with limits, from bounds inside or outside", () =>
    Effect.gen(function*() {
      const store = yield* openStore(freshLocation(), { client, storeOptions: { sealed } })
      // Written in reverse, so no order of writing can pass for key order.
      for (const key of [...ordered].reverse()) yield* store.put({ key, value: bytes(key) })
      const range = (start: string, end: string, options: { descending?: boolean; limit?: number } = {}) =>
        Stream.runCollect(store.items({ start, end, ...options })).pipe(
          Effect.map((items) => items.map((item) => item.key))
        )
      const between = (start: string, end: string) =>
        ordered.filter((key) => Key.compare(start, key) <= 0 && Key.compare(key, end) <= 0)

      for (
        const [start, end] of [
          ["/", Key.maxKey],
          ["/a", "/v"],
          ["/s/", Key.rangeEnd("/s/")],
          ["/s/a/", "/s/ﬀ"],
          ["/r", "/s/b"],
          ["/s/b", "/u/alice/x"],
          ["/u/al", "/u/bob"],
          ["/u/al/", Key.rangeEnd("/u/al/")],
          ["/u/alice/", Key.rangeEnd("/u/alice/")],
          ["/u/al/x", "/u/al/y"]
        ] as const
      ) {
        const expected = between(start, end)
        expect(yield* range(start, end), `${start}..${end}`).toEqual(expected)
        expect(yield* range(start, end, { descending: true }), `${start}..${end} descending`).toEqual(
          [...expected].reverse()
        )
        expect(yield* range(start, end, { limit: 2 }), `${start}..${end} limit 2`).toEqual(expected.slice(0, 2))
      }
      const all = yield* store.getRange("/", Key.maxKey)
      expect(all.map((item) => new TextDecoder().decode(item.value))).toEqual(ordered)

      // deleteRange learns its keys the same way: exactly those in the bounds go.
      expect(yield* store.deleteRange("/s/a/", "/u/al/x")).toBe(between("/s/a/", "/u/al/x").length)
      expect(yield* range("/", Key.maxKey)).toEqual(
        ordered.filter((key) => !between("/s/a/", "/u/al/x").includes(key))
      )
    }))

  it.live("a sealed prefix with more live keys than the bound is SealedRangeTooLarge; one segment is not bound", () =>
    Effect.gen(function*() {
      const store = yield* openStore(freshLocation(), { client, storeOptions: { sealed, sealedRangeLimit: 5 } })
      for (let i = 0; i < 6; i++) yield* store.put({ key: `/u/carol/${i}`, value: bytes(`${i}`) })
      yield* store.put({ key: "/u/dave", value: bytes("d") })
      const tooLarge = yield* Effect.flip(store.getRange("/u/", Key.rangeEnd("/u/")))
      expect(tooLarge).toBeInstanceOf(SealedRangeTooLarge)
      expect(tooLarge).toMatchObject({ prefix: "/u/", limit: 5 })
      expect(tooLarge.message).toContain("more than 5 live keys")
      expect((yield* Effect.flip(store.deleteRange("/u/a", "/u/z")))._tag).toBe("SealedRangeTooLarge")
      // Nothing of the prefix was deleted, and a range inside one segment still reads it all, lazily and in order.
      const carol = yield* store.getRange("/u/carol/", Key.rangeEnd("/u/carol/"))
      expect(carol.map((item) => item.key)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `/u/carol/${i}`))
      expect((yield* store.get("/u/dave")).key).toBe("/u/dave")
    }))
})
