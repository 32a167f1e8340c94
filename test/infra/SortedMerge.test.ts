import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import fc from "fast-check"
import { mergeSorted } from "../../src/infra/SortedMerge.ts"

/** A sorted source served in pages of `pageSize`, counting the pages it was asked for. */
const paged = (items: ReadonlyArray<number>, pageSize: number) => {
  const fetched = { pages: 0 }
  const stream = Stream.paginate(0, (offset: number) =>
    Effect.sync(() => {
      fetched.pages++
      const next = offset + pageSize
      return [items.slice(offset, next), next < items.length ? Option.some(next) : Option.none()] as const
    }))
  return { stream, fetched }
}

const ascending = (a: number, b: number) => a - b

describe("SortedMerge.mergeSorted", () => {
  it.effect("merges sorted sources into one sorted stream (property, fixed seed)", () =>
    Effect.sync(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(fc.integer({ min: -50, max: 50 }), { maxLength: 30 }), { maxLength: 6 }),
          fc.integer({ min: 1, max: 7 }),
          async (sources, pageSize) => {
            const sorted = sources.map((source) => [...source].sort(ascending))
            const merged = await Effect.runPromise(
              Stream.runCollect(mergeSorted(sorted.map((source) => paged(source, pageSize).stream), ascending))
            )
            expect([...merged]).toEqual(sorted.flat().sort(ascending))
          }
        ),
        { seed: 20261202, numRuns: 150 }
      )
    ))

  it.effect("reads lazily: taking the first items fetches only the first page of each source", () =>
    Effect.gen(function*() {
      const sources = [0, 1, 2, 3].map((bucket) => paged(Array.from({ length: 100 }, (_, i) => i * 4 + bucket), 10))
      const firstFive = yield* mergeSorted(sources.map((source) => source.stream), ascending).pipe(
        Stream.take(5),
        Stream.runCollect
      )
      expect([...firstFive]).toEqual([0, 1, 2, 3, 4])
      expect(sources.map((source) => source.fetched.pages)).toEqual([1, 1, 1, 1])
      // Descending, by the reversed order, from sources read newest first.
      const descending = yield* mergeSorted(
        [[9, 5, 1], [8, 4], [7, 6, 3, 2]].map((items) => Stream.fromIterable(items)),
        (a, b) => b - a
      ).pipe(Stream.runCollect)
      expect([...descending]).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1])
    }))
})
