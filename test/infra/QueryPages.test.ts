import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option, Stream } from "effect"
import fc from "fast-check"
import * as QueryPages from "../../src/infra/QueryPages.ts"

/** Pages of `pageSize` over `items`, recording which pages were requested and which were interrupted. */
const source = (items: ReadonlyArray<number>, pageSize: number, options: { readonly failAt?: number } = {}) => {
  const requested: Array<number> = []
  const interrupted: Array<number> = []
  const fetch = (start: number | undefined) => {
    const offset = start ?? 0
    return Effect.gen(function*() {
      requested.push(offset)
      // A page takes a turn of the event loop, as a response does.
      yield* Effect.sleep(1)
      if (options.failAt === offset) return yield* Effect.fail(`page at ${offset} failed`)
      const next = offset + pageSize
      return [items.slice(offset, next), next < items.length ? Option.some(next) : Option.none()] as const
    }).pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted.push(offset))))
  }
  return { fetch, requested, interrupted }
}

describe("QueryPages.pages", () => {
  it.live("gives every item in order, with or without reading ahead (property, fixed seed)", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer(), { maxLength: 40 }),
          fc.integer({ min: 1, max: 9 }),
          fc.boolean(),
          async (items, pageSize, readAhead) => {
            const { fetch } = source(items, pageSize)
            const read = await Effect.runPromise(Stream.runCollect(QueryPages.pages(fetch, { readAhead })))
            expect([...read]).toEqual(items)
          }
        ),
        { seed: 20261203, numRuns: 100 }
      )
    ))

  it.live("without reading ahead, a page is requested only once the one before has been read through", () =>
    Effect.gen(function*() {
      const { fetch, requested } = source([1, 2, 3, 4, 5, 6], 2)
      const first = yield* QueryPages.pages(fetch, { readAhead: false }).pipe(Stream.take(2), Stream.runCollect)
      expect([...first]).toEqual([1, 2])
      expect(requested).toEqual([0])
    }))

  it.live("reading ahead, the next page is requested as soon as a page arrives, before its items are taken", () =>
    Effect.gen(function*() {
      const { fetch, requested } = source([1, 2, 3, 4, 5, 6], 2)
      const firstTaken = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const reader = yield* QueryPages.pages(fetch, { readAhead: true }).pipe(
        Stream.tap((item) =>
          item === 1 ? Effect.andThen(Deferred.succeed(firstTaken, undefined), Deferred.await(release)) : Effect.void
        ),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* Deferred.await(firstTaken)
      // The reader holds the first page's first item; the second page is already on its way, the third is not.
      expect(requested).toEqual([0, 2])
      yield* Deferred.succeed(release, undefined)
      expect([...(yield* Fiber.join(reader))]).toEqual([1, 2, 3, 4, 5, 6])
      expect(requested).toEqual([0, 2, 4])
    }))

  it.live("reading ahead, a page that fails fails the stream after the items before it", () =>
    Effect.gen(function*() {
      const { fetch } = source([1, 2, 3, 4, 5, 6], 2, { failAt: 4 })
      const taken: Array<number> = []
      const error = yield* QueryPages.pages(fetch, { readAhead: true }).pipe(
        Stream.runForEach((item) => Effect.sync(() => taken.push(item))),
        Effect.flip
      )
      expect(error).toBe("page at 4 failed")
      expect(taken).toEqual([1, 2, 3, 4])
    }))

  it.live("reading ahead, a stream ended early interrupts the page it was reading ahead", () =>
    Effect.gen(function*() {
      const { fetch, requested, interrupted } = source([1, 2, 3, 4, 5, 6], 2)
      const first = yield* QueryPages.pages(fetch, { readAhead: true }).pipe(Stream.take(1), Stream.runCollect)
      expect([...first]).toEqual([1])
      expect(requested).toEqual([0, 2])
      expect(interrupted).toEqual([2])
    }))
})
