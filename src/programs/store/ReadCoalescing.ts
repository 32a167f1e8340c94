/**
 * Read coalescing: concurrent reads of one key share requests. A read joins
 * only a request that has not been sent yet, so every answer comes from a
 * request sent after its caller asked (a read answers from what it read, and
 * never misses a write acknowledged before it was invoked): while a key's
 * request is in flight, the callers that arrive wait for the next one, which
 * is sent as soon as the one in flight returns and serves them all.
 *
 * A hot key read by many fibers costs about two requests per round trip
 * instead of one per caller; an uncontended read goes out at once, as before.
 */
import { Deferred, Effect } from "effect"
import type { Scope } from "effect"

interface Slot<A, E> {
  /** The callers waiting for the key's next request, not sent yet. */
  next: Deferred.Deferred<A, E> | undefined
}

/**
 * Wraps `read` so that concurrent calls for one key share requests as above. The requests made for waiting
 * callers run in `scope`'s lifetime: a caller interrupted while its request is in flight does not strand the
 * callers queued behind it.
 */
export const make = <A, E>(
  read: (key: string) => Effect.Effect<A, E>
): Effect.Effect<(key: string) => Effect.Effect<A, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const slots = new Map<string, Slot<A, E>>()

    /** Sends the key's next request for whoever waits for it, again while callers keep coming; then frees the key. */
    const serve = (key: string, slot: Slot<A, E>): Effect.Effect<void> =>
      Effect.suspend(() => {
        const waiting = slot.next
        if (waiting === undefined) {
          slots.delete(key)
          return Effect.void
        }
        slot.next = undefined
        return read(key).pipe(
          Effect.exit,
          Effect.flatMap((exit) => Deferred.done(waiting, exit)),
          Effect.andThen(serve(key, slot))
        )
      })

    /**
     * After the request in flight (called when it ends): hands the key to a fiber of its own if callers wait, else
     * frees it.
     */
    const handOff = (key: string, slot: Slot<A, E>): Effect.Effect<void> => {
      if (slot.next === undefined) {
        slots.delete(key)
        return Effect.void
      }
      return Effect.asVoid(Effect.forkIn(serve(key, slot), scope))
    }

    return (key: string): Effect.Effect<A, E> =>
      Effect.suspend(() => {
        const slot = slots.get(key)
        if (slot === undefined) {
          // Nothing in flight: this caller's request goes out now, in its own fiber (the common, uncontended case).
          const own: Slot<A, E> = { next: undefined }
          slots.set(key, own)
          return read(key).pipe(Effect.onExit(() => handOff(key, own)))
        }
        if (slot.next === undefined) slot.next = Deferred.makeUnsafe<A, E>()
        return Deferred.await(slot.next)
      })
  })
