/**
 * Spans for the calls every read and write makes (`EventTable.append`, `Store.get`, …), taken only when a tracing
 * backend is installed.
 *
 * With Effect's native tracer (no backend) a span is made, parented and ended, and no exporter ever sees it; under a
 * put over a stub transport that was about a twentieth of the put's CPU (its own span object, two copies of the
 * fiber's context, an exit handler). Effect's `nativeTracer` doc names this comparison for work only a backend
 * could observe. With any other tracer (an OTLP exporter, a test's) the span is the same as `Effect.withSpan`'s.
 *
 * One thing goes with it under the native tracer: `withSpan` also names the span in the fiber's stack frames, so a
 * failure's `Cause.pretty` read `at EventTable.append`. Those lines are gone there; the errors themselves are typed and
 * name their operation, and with a tracer installed the lines are as before.
 */
import { Effect, Tracer } from "effect"

/**
 * `Effect.withSpan(name)` without a call-site stack trace (capturing one per call was the largest single Effect cost
 * of a get), skipped under the native tracer.
 */
export const hotSpan = (name: string) => {
  const traced = Effect.withSpan(name, undefined, { captureStackTrace: false })
  return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withFiber((fiber) => fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer ? self : traced(self))
}
