/**
 * A stream read one element at a time with a look at the next one: what merging several key-ordered streams
 * (a merge join) needs, and what a stream's own combinators do not give.
 */
import { Effect, Pull, Stream } from "effect"
import type { Scope } from "effect"

/** A stream read one element at a time, with a look at the next. */
export interface Cursor<A, E> {
  readonly peek: Effect.Effect<A | undefined, E>
  readonly take: Effect.Effect<A | undefined, E>
}

/** A cursor over `stream`, pulled page by page as it is read; closed with the scope. */
export const make = <A, E, R>(stream: Stream.Stream<A, E, R>): Effect.Effect<Cursor<A, E>, never, Scope.Scope | R> =>
  Effect.map(Stream.toPull(stream), (pull) => {
    let chunk: ReadonlyArray<A> = []
    let index = 0
    let done = false
    const fill = Effect.gen(function*() {
      while (!done && index >= chunk.length) {
        const next: ReadonlyArray<A> | undefined = yield* pull.pipe(Pull.catchDone(() => Effect.succeed(undefined)))
        if (next === undefined) done = true
        else {
          chunk = next
          index = 0
        }
      }
    })
    return {
      peek: Effect.map(fill, () => (done ? undefined : chunk[index])),
      take: Effect.map(fill, () => (done ? undefined : chunk[index++]))
    }
  })
