/**
 * A watch run in the background for a test, collecting what it delivers, how it ended and whether it did.
 */
import { Deferred, Effect, Stream } from "effect"
import type { Scope } from "effect"
import type { Store } from "../../src/programs/store/Store.ts"
import type { WatchError, WatchEvent, WatchOptions } from "../../src/programs/store/Watch.ts"

/** A delivery other than `Init`. */
export type Changed = Exclude<WatchEvent, { _tag: "Init" }>

/** The key a change is about. */
export const keyOf = (event: Changed): string => (event._tag === "Put" ? event.item.key : event.key)

/** The deliveries after `Init`. */
export const changes = (events: ReadonlyArray<WatchEvent>): Array<Changed> =>
  events.filter((event): event is Changed => event._tag !== "Init")

const decoder = new TextDecoder()

/** A change as a line to compare: `Put key#seq=value` (the value read as UTF-8), `Delete key#seq`, `Expire key#seq`. */
export const describeEvent = (event: Changed): string =>
  event._tag === "Put"
    ? `Put ${event.item.key}#${event.seq}=${decoder.decode(event.item.value)}`
    : `${event._tag} ${event.key}#${event.seq}`

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
