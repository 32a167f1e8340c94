/**
 * Contract of a watch's input: prefixes are checked like keys, before anything is read. A prefix no key can start
 * with in the store's byte order (a lone surrogate, which UTF-8 cannot carry, so `startsWith` and the sort-key
 * range of the prefix disagree; a NUL; more bytes than a key may have) fails the watch with `BadParameter` naming
 * it, and so does a capacity that is not a whole number of events, 1 or more. An empty prefix list, or an empty
 * prefix, covers every key. Runs live: a watch's reader polls on the real clock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { BadParameter } from "../../../../src/domain/Errors.ts"
import * as Key from "../../../../src/domain/Key.ts"
import type { WatchEvent, WatchOptions } from "../../../../src/programs/store/Watch.ts"
import { bytes, text, uniquePrefix } from "./Backend.ts"
import type { ContractBackend, S } from "./Backend.ts"

/** watch input: bad prefixes and capacities fail with BadParameter before anything is read; "" covers every key */
export const watchInputContract = (backend: ContractBackend) =>
  describe(`watch input (${backend.name})`, () => {
    const s = backend.storage("contract-watch-input")

    /** What the watch delivers first, or how it fails. */
    const firstOf = (store: S, options: WatchOptions) =>
      store.watch(options).pipe(Stream.take(1), Stream.runCollect, Effect.timeout("20 seconds"), Effect.result)

    const bad: ReadonlyArray<readonly [string, WatchOptions, BadParameter]> = [
      ["a lone high surrogate", { prefixes: ["/w/\uD83D"] }, prefixError(0, "lone surrogate")],
      [
        "a lone low surrogate after a good prefix",
        { prefixes: ["/w/", "/w/\uDE00x"] },
        prefixError(1, "lone surrogate")
      ],
      ["a NUL", { prefixes: ["/w/\u0000"] }, prefixError(0, "NUL")],
      ["more bytes than a key may have", { prefixes: [`/${"x".repeat(Key.maxKeyBytes)}`] }, prefixError(0, "bytes")],
      ["a prefix that is not a string", { prefixes: [42 as unknown as string] }, prefixError(0, "string")],
      ["prefixes that are not an array", { prefixes: "/w/" as unknown as ReadonlyArray<string> }, listError],
      ["a capacity of 0", { capacity: 0 }, capacityError],
      ["a fractional capacity", { capacity: 1.5 }, capacityError]
    ]

    for (const [name, options, expected] of bad) {
      it.live(`${name}: BadParameter before anything is read; nothing changes`, () =>
        Effect.gen(function*() {
          const recording = s.openRecording === undefined ? undefined : yield* s.openRecording()
          const store = recording?.store ?? (yield* s.open())
          const before = yield* s.snapshot()
          const sent = recording?.requests().length ?? 0
          const outcome = yield* firstOf(store, options)
          expect(outcome._tag).toBe("Failure")
          const error = outcome._tag === "Failure" ? outcome.failure : undefined
          expect(error?._tag).toBe("BadParameter")
          expect((error as unknown as BadParameter).field).toBe(expected.field)
          expect((error as unknown as BadParameter).reason).toContain(expected.reason)
          if (recording !== undefined) expect(recording.requests().slice(sent)).toEqual([])
          expect(yield* s.snapshot()).toBe(before)
        }))
    }

    it.live("an empty prefix covers every key, as no prefixes do", () =>
      Effect.gen(function*() {
        const store = yield* s.open()
        const key = `${uniquePrefix("all")}k`
        for (const prefixes of [[""], ["", "/elsewhere/"], []]) {
          const seen = yield* Effect.gen(function*() {
            const events: Array<WatchEvent> = []
            yield* store.watch({ prefixes }).pipe(
              Stream.runForEach((event) => Effect.sync(() => events.push(event))),
              Effect.forkScoped
            )
            yield* waitFor(() => events.length >= 1)
            yield* store.put({ key, value: bytes(JSON.stringify(prefixes)) })
            yield* waitFor(() => events.some((event) => event._tag === "Put" && event.item.key === key))
            return events
          }).pipe(Effect.scoped)
          expect(seen[0]).toEqual({ _tag: "Init" })
          const put = seen.find((event) => event._tag === "Put")
          expect(put?._tag === "Put" ? text(put.item.value) : undefined).toBe(JSON.stringify(prefixes))
        }
      }), 60_000)
  })

const prefixError = (index: number, reason: string) => new BadParameter({ field: `prefixes[${index}]`, reason })
const listError = new BadParameter({ field: "prefixes", reason: "array" })
const capacityError = new BadParameter({ field: "capacity", reason: "whole number" })

/** Waits (real time) until `done` holds, or fails the test after 20 s. */
const waitFor = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let waited = 0; waited < 20_000; waited += 50) {
      if (done()) return
      yield* Effect.sleep(50)
    }
    expect(done(), "waited 20 s").toBe(true)
  })
