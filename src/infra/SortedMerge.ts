/**
 * A k-way merge of sorted streams, lazily: each source is pulled page by page only as far as the merged stream is
 * read, so a range read over several partitions (see `PartitionKeys`) with a limit reads about what it returns,
 * never everything first and sorts after.
 */
import { Cause, Effect, Pull, Stream } from "effect"
import type { Scope } from "effect"

/** A stream read one element at a time, with a look at the next. */
export interface Cursor<A, E> {
  readonly peek: Effect.Effect<A | undefined, E>
  readonly take: Effect.Effect<A | undefined, E>
}

/** A cursor over `stream`, pulled page by page as it is read; closed with the scope. */
export const cursor = <A, E, R>(stream: Stream.Stream<A, E, R>): Effect.Effect<Cursor<A, E>, never, Scope.Scope | R> =>
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

/**
 * The elements of `sources`, each sorted by `compare`, in one stream sorted by `compare` (ties: the earlier source
 * first). One source is returned as it is, paying nothing for the merge.
 */
export const mergeSorted = <A, E, R>(
  sources: ReadonlyArray<Stream.Stream<A, E, R>>,
  compare: (a: A, b: A) => number
): Stream.Stream<A, E, R> => {
  if (sources.length === 0) return Stream.empty
  if (sources.length === 1) return sources[0]!
  return Stream.unwrap(Effect.gen(function*() {
    const cursors = yield* Effect.forEach(sources, cursor)
    // The head of every source, read once each; a source is pulled again only after its head was taken.
    const heads: Array<A | undefined> = yield* Effect.forEach(cursors, (each) => each.peek, {
      concurrency: "unbounded"
    })
    return Stream.fromPull(Effect.succeed(Effect.gen(function*() {
      let best = -1
      for (let index = 0; index < heads.length; index++) {
        const head = heads[index]
        if (head !== undefined && (best < 0 || compare(head, heads[best]!) < 0)) best = index
      }
      if (best < 0) return yield* Cause.done()
      const taken = heads[best]!
      yield* cursors[best]!.take
      heads[best] = yield* cursors[best]!.peek
      return [taken] as const
    })))
  }))
}
