/**
 * The window-by-window merge of `MigratingTable` over in-memory places: both layouts' items come back in range
 * order, each once (the new place's copy kept), in both directions and across window edges, even when every key
 * moves at the worst moment (right after its window of the old place was read, before the new place is read).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Result, Stream } from "effect"
import * as Key from "../../src/domain/Key.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import type { StoredEvent } from "../../src/infra/EventRecord.ts"
import { windowed } from "../../src/programs/store/MigratingTable.ts"

const stored = (key: string, seq: number, place: string) =>
  ({ key, seq, place, item: { [Attr.sort]: { B: SortKey.encode(key, seq) } } }) as unknown as StoredEvent & {
    readonly place: string
  }

type Placed = ReturnType<typeof stored>

const sortKey = (event: StoredEvent) => SortKey.encode(event.key, event.seq)

/** A place holding items, read lazily as a sort-key range query pages it: an item is there if it is when pulled. */
const place = (items: Map<string, Placed>) => (lower: Uint8Array, upper: Uint8Array, descending: boolean) =>
  Stream.suspend(() =>
    Stream.fromIterable(
      [...items.entries()]
        .filter(([, item]) => Buffer.compare(sortKey(item), lower) >= 0 && Buffer.compare(sortKey(item), upper) <= 0)
        .sort(([, a], [, b]) => (descending ? -1 : 1) * Buffer.compare(sortKey(a), sortKey(b)))
    ).pipe(Stream.filterMap(([name]) => {
      const item = items.get(name)
      return item === undefined ? Result.failVoid : Result.succeed(item)
    }))
  )

const keys = Array.from({ length: 250 }, (_, index) => `/hot/k${String(index).padStart(3, "0")}`)
const id = (event: StoredEvent) => `${event.key}#${event.seq}`

const run = (descending: boolean, moveOnRead: boolean) =>
  Effect.gen(function*() {
    const source = new Map<string, Placed>()
    const target = new Map<string, Placed>()
    // Two events per key; even keys already moved (at both places for a moment: the copies are the same events).
    for (const [index, key] of keys.entries()) {
      for (const seq of [1, 2]) {
        if (index % 2 === 0) target.set(`${key}#${seq}`, stored(key, seq, "new"))
        if (index % 2 === 1 || index % 10 === 0) source.set(`${key}#${seq}`, stored(key, seq, "old"))
      }
    }
    const readSource = place(source)
    const readTarget = place(target)
    const range = { lower: SortKey.lowerBound("/hot/"), upper: SortKey.prefixUpperBound("/hot/"), descending }
    const result = yield* Stream.runCollect(windowed(
      (lower, upper) => readSource(lower, upper, descending),
      (lower, upper) =>
        Stream.suspend(() => {
          // Every key still at the old place moves now, before the new place is read: copied there, then removed.
          if (moveOnRead) {
            for (const [name, item] of source) target.set(name, stored(item.key, item.seq, "new"))
            source.clear()
          }
          return readTarget(lower, upper, descending)
        }),
      range,
      sortKey
    ))
    return result as ReadonlyArray<StoredEvent> as ReadonlyArray<Placed>
  })

describe("MigratingTable.windowed", () => {
  for (const descending of [false, true]) {
    for (const moveOnRead of [false, true]) {
      it.effect(
        `returns every event once, in ${descending ? "descending" : "ascending"} order${
          moveOnRead ? ", with every key moving between the two reads" : ""
        }`,
        () =>
          Effect.gen(function*() {
            const result = yield* run(descending, moveOnRead)
            const expected = keys.flatMap((key) => [`${key}#2`, `${key}#1`])
            expect(result.map(id)).toEqual(descending ? [...expected].reverse() : expected)
            // An event at both places comes back as the new place's copy.
            for (const [index, key] of keys.entries()) {
              if (index % 2 === 0) {
                expect(result.filter((event) => event.key === key).map((event) => event.place)).toEqual(["new", "new"])
              }
            }
            expect(
              [...result].map((event) => event.key).every((key, index, all) =>
                index === 0 ||
                (descending ? Key.compare(all[index - 1]!, key) >= 0 : Key.compare(all[index - 1]!, key) <= 0)
              )
            ).toBe(true)
          })
      )
    }
  }
})
