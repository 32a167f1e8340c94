/**
 * The pure parts of reading a prefix while it is sealed in place (see `SealedFallback`): the order a key's two stored
 * forms are read in, so a key moving between the reads is still found, and the merge of a migrating prefix's sorted
 * items into the items around it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import type { Event } from "../../src/domain/Event.ts"
import type { Item } from "../../src/domain/Item.ts"
import { latest, mergeInOrder } from "../../src/programs/store/SealedFallback.ts"

const event = (key: string, seq: number): Event => ({ key, seq, revision: `r${seq}`, op: "put", timestamp: 0 })
const item = (key: string): Item => ({ key, value: new Uint8Array(), revision: key })

/** A table whose reads are scripted: each read of a key answers the next of its answers, and is logged. */
const scripted = (answers: Record<string, Array<Event | undefined>>) => {
  const log: Array<string> = []
  const read = (key: string) =>
    Effect.sync(() => {
      log.push(key)
      return Option.fromNullishOr(answers[key]!.shift())
    })
  return { log, read }
}

describe("SealedFallback.latest", () => {
  it.effect("answers from the sealed key without reading the clear one", () =>
    Effect.gen(function*() {
      const table = scripted({ S: [event("S", 4)], K: [] })
      expect(Option.getOrUndefined(yield* latest(table.read("S"), table.read("K")))?.seq).toBe(4)
      expect(table.log).toEqual(["S"])
    }))

  it.effect("falls back to the clear key while the key has not moved", () =>
    Effect.gen(function*() {
      const table = scripted({ S: [undefined], K: [event("K", 2)] })
      expect(Option.getOrUndefined(yield* latest(table.read("S"), table.read("K")))?.key).toBe("K")
      expect(table.log).toEqual(["S", "K"])
    }))

  it.effect("reads the sealed key again when the key moved (and was cleaned up) between the two reads", () =>
    Effect.gen(function*() {
      const table = scripted({ S: [undefined, event("S", 3)], K: [undefined] })
      expect(Option.getOrUndefined(yield* latest(table.read("S"), table.read("K")))?.seq).toBe(3)
      expect(table.log).toEqual(["S", "K", "S"])
    }))

  it.effect("is absent only when both forms are", () =>
    Effect.gen(function*() {
      const table = scripted({ S: [undefined, undefined], K: [undefined] })
      expect(Option.isNone(yield* latest(table.read("S"), table.read("K")))).toBe(true)
    }))
})

describe("SealedFallback.mergeInOrder", () => {
  const keys = (items: ReadonlyArray<Item>) => items.map((entry) => entry.key)

  it.effect("places a migrating prefix's sorted items among the others, either direction", () =>
    Effect.gen(function*() {
      const outside = ["/a", "/u/x", "/z"].map(item)
      const block = ["/t/1", "/t/2", "/t/3"].map(item)
      expect(keys(yield* Stream.runCollect(mergeInOrder(Stream.fromIterable(outside), block, false)))).toEqual([
        "/a",
        "/t/1",
        "/t/2",
        "/t/3",
        "/u/x",
        "/z"
      ])
      const descending = mergeInOrder(Stream.fromIterable([...outside].reverse()), [...block].reverse(), true)
      expect(keys(yield* Stream.runCollect(descending))).toEqual(["/z", "/u/x", "/t/3", "/t/2", "/t/1", "/a"])
    }))

  it.effect("hands on the block when nothing surrounds it, and the others when it is empty", () =>
    Effect.gen(function*() {
      expect(keys(yield* Stream.runCollect(mergeInOrder(Stream.empty, [item("/t/1")], false)))).toEqual(["/t/1"])
      expect(keys(yield* Stream.runCollect(mergeInOrder(Stream.make(item("/a")), [], false)))).toEqual(["/a"])
    }))
})
