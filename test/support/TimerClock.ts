/**
 * The real clock with its timers moved: time reads as it is, but every `sleep` lasts what `adjust` makes of it. For
 * tests of code that must hold when timers fire late (a paused process) or a little early (a live timer can).
 */
import { Clock } from "effect"
import type { Duration } from "effect"

export const timersAdjusted = (adjust: (duration: Duration.Duration) => Duration.Duration): Clock.Clock => {
  const real = Clock.Clock.defaultValue()
  return {
    currentTimeMillisUnsafe: () => real.currentTimeMillisUnsafe(),
    currentTimeMillis: real.currentTimeMillis,
    currentTimeNanosUnsafe: () => real.currentTimeNanosUnsafe(),
    currentTimeNanos: real.currentTimeNanos,
    monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: real.monotonicTimeNanos,
    sleep: (duration) => real.sleep(adjust(duration))
  }
}
