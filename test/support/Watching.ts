/**
 * A watch run in the background for a test, collecting what it delivers, how it ended and whether it did.
 */
import { Deferred, Effect, Stream } from "effect"
import type { Scope } from "effect"
import type { Store } from "../../src/programs/store/Store.ts"
import type { WatchError, WatchEvent, WatchOptions } from "../../src/programs/store/Watch.ts"

/** What a background watch has delivered so far. */
export interface Watching {
  readonly events: Array<WatchEvent>
  error: WatchError | undefined
  done: boolean
}

/**
 * Runs a watch in the test's scope (it outlives the fiber that started it), collecting what it delivers; `gate`
 * (if given) holds every change until it opens.
 */
export const startWatch = (
  store: Store["Service"],
  options?: WatchOptions,
  gate?: Deferred.Deferred<void>
) =>
  Effect.gen(function*() {
    const watching: Watching = { events: [], error: undefined, done: false }
    const fiber = yield* store.watch(options).pipe(
      Stream.runForEach((event) =>
        (event._tag !== "Init" && gate ? Deferred.await(gate) : Effect.void).pipe(
          Effect.andThen(Effect.sync(() => watching.events.push(event)))
        )
      ),
      Effect.catch((error) =>
        Effect.sync(() => {
          watching.error = error
        })
      ),
      Effect.ensuring(Effect.sync(() => {
        watching.done = true
      })),
      Effect.forkScoped
    )
    return { watching, fiber }
  }) satisfies Effect.Effect<unknown, never, Scope.Scope>
