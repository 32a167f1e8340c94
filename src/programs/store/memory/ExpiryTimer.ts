/**
 * The in-memory store's stand-in for the projection worker's expiry: a fiber
 * that sleeps under Effect's `Clock` until the next item expires and then
 * records the expiry, so watchers hear of it with nobody reading. Under
 * `TestClock`, `TestClock.adjust` past an expiry wakes it.
 */
import { Clock, Deferred, Effect, Exit } from "effect"

/** What the timer works on. */
export interface ExpiryTimerOptions {
  /** The earliest expiry not yet recorded (epoch ms), if any. */
  readonly nextExpiry: () => number | undefined
  /** Records every expiry due by now (under the store's lock). */
  readonly expireDue: Effect.Effect<void>
}

/** A timer: `changed` tells it an expiry was set, so it looks again; `run` is its loop, to fork into the store's scope. */
export interface ExpiryTimer {
  readonly changed: () => void
  readonly run: Effect.Effect<never>
}

/** A timer over a store's expiries. */
export const make = (options: ExpiryTimerOptions): ExpiryTimer => {
  let wakeUp = Deferred.makeUnsafe<void>()
  const changed = () => {
    const previous = wakeUp
    wakeUp = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(previous, Exit.void)
  }
  const step = Effect.gen(function*() {
    // Taken before looking, so an expiry set while this step sleeps is never missed.
    const signal = wakeUp
    const next = options.nextExpiry()
    if (next === undefined) return yield* Deferred.await(signal)
    const now = yield* Clock.currentTimeMillis
    if (next > now) return yield* Effect.raceFirst(Effect.sleep(next - now), Deferred.await(signal))
    yield* options.expireDue
  })
  return { changed, run: Effect.forever(step) }
}
