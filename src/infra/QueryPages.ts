/**
 * The pages of a DynamoDB Query as a stream of their items, lazily: a page is requested when the reader has read
 * through the one before. Reading ahead, it is requested as soon as the one before arrives saying there is more, so
 * DynamoDB serves it while the reader works through the last. Reading ahead is for readers that take the whole
 * range: one that may stop early would have a page read that nobody asked for.
 */
import { Effect, Fiber, Option, Stream } from "effect"

/** A page's items, and where the next page starts when there is one. */
export type Page<A, S> = readonly [ReadonlyArray<A>, Option.Option<S>]

/** The items of the pages `fetch` reads, from the first on (`fetch(undefined)`), in order. */
export const pages = <A, S, E>(
  fetch: (start: S | undefined) => Effect.Effect<Page<A, S>, E>,
  options: { readonly readAhead: boolean }
): Stream.Stream<A, E> => {
  if (!options.readAhead) return Stream.paginate(undefined as S | undefined, fetch)
  return Stream.unwrap(Effect.map(Effect.scope, (scope) => {
    // A page's request, started now in a fiber of the stream's scope (gone with the stream if it ends first). The
    // request is on its way only once the SDK's promise chain has run: that runs before the caller goes on to
    // decode the page before it, synchronously and at length.
    const ahead = (start: S) =>
      Effect.forkIn(fetch(start), scope, { startImmediately: true }).pipe(
        Effect.tap(Effect.yieldNow),
        Effect.map(Fiber.join)
      )
    // The state is how to get the page to hand on: the first is fetched when pulled, every later one joins the
    // request the page before it started.
    const handOn = (page: Effect.Effect<Page<A, S>, E>) =>
      Effect.flatMap(page, ([items, next]) =>
        Option.isNone(next)
          ? Effect.succeed([items, Option.none()] as const)
          : Effect.map(ahead(next.value), (joined) => [items, Option.some(joined)] as const))
    return Stream.paginate(fetch(undefined), handOn)
  }))
}
