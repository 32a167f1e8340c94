import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Tracer } from "effect"
import { hotSpan } from "../../src/infra/HotSpan.ts"

/** A tracer of native spans that remembers the name of every span it made. */
const recordingTracer = () => {
  const names: Array<string> = []
  const tracer = Tracer.make({
    span: (options) => {
      names.push(options.name)
      return new Tracer.NativeSpan(options)
    }
  })
  return { names, tracer }
}

const spanName = Effect.map(Effect.option(Effect.currentSpan), Option.map((span) => span.name))

describe("hotSpan", () => {
  it.effect("with a tracer installed, the effect runs in a span of that name, as Effect.withSpan's", () =>
    Effect.gen(function*() {
      const { names, tracer } = recordingTracer()
      const inside = yield* spanName.pipe(hotSpan("EventTable.append"), Effect.withTracer(tracer))
      expect(inside).toEqual(Option.some("EventTable.append"))
      expect(names).toEqual(["EventTable.append"])
    }))

  it.effect("the span is a child of the caller's span and ends with the effect", () =>
    Effect.gen(function*() {
      const { tracer } = recordingTracer()
      const [outer, inner] = yield* Effect.gen(function*() {
        const outer = yield* Effect.currentSpan
        const inner = yield* Effect.currentSpan.pipe(hotSpan("inner"))
        return [outer, inner] as const
      }).pipe(Effect.withSpan("outer"), Effect.withTracer(tracer))
      expect(Option.getOrUndefined(inner.parent)?.spanId).toBe(outer.spanId)
      expect(inner.status._tag).toBe("Ended")
    }))

  it.effect("under Effect's native tracer (no backend) no span is made", () =>
    Effect.gen(function*() {
      expect(yield* Effect.tracer).toBe(Tracer.nativeTracer)
      expect(yield* spanName.pipe(hotSpan("EventTable.append"))).toEqual(Option.none())
      // Inside a span of the caller's, that span stays the current one.
      expect(yield* spanName.pipe(hotSpan("EventTable.append"), Effect.withSpan("caller"))).toEqual(
        Option.some("caller")
      )
    }))

  it.effect("the effect's value and failure pass through unchanged either way", () =>
    Effect.gen(function*() {
      const { tracer } = recordingTracer()
      for (const traced of [(self: Effect.Effect<number, string>) => self, Effect.withTracer(tracer)]) {
        expect(yield* traced(Effect.succeed(1).pipe(hotSpan("ok")))).toBe(1)
        expect(yield* Effect.flip(traced(Effect.fail("lost").pipe(hotSpan("failed"))))).toBe("lost")
      }
    }))
})
