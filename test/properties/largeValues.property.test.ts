/**
 * Property (fast-check, fixed seed) on DynamoDB Local: sequences of puts, deletes and atomic writes mixing values
 * below, at and above the one-item threshold (400 KB) and up to 1.5 MB, with and without compression, on one
 * partition or across partitions (a prefix's own partition and a bucketed prefix beside the default one), read back
 * exactly as a map model says: each write's get, the whole range, every key's history and getAt of a past revision.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as fc from "fast-check"
import { createHash } from "node:crypto"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import type { Layout } from "../../src/domain/Partitioning.ts"
import * as ValueChunks from "../../src/infra/ValueChunks.ts"
import { openStore, tablePerFile } from "../support/TestStore.ts"

const files = tablePerFile("large-prop")

const keys = ["/p/a", "/q/b", "/r/c", "/r/d"] as const
/** `/q/` in a partition of its own, `/r/` over four hash buckets, `/p/` in the default partition. */
const layout: Layout = [{ prefix: "/q/", name: "q" }, { prefix: "/r/", name: "r", buckets: 4 }]
type Size = "small" | "at" | "above" | "large"

/** A value of a size class, its bytes derived from `seed` (SHA-256 in counter mode: deterministic, incompressible). */
const makeValue = (size: Size, seed: number, threshold: number): Uint8Array => {
  const length = size === "small"
    ? 1 + (seed % 2000)
    : size === "at"
    ? threshold
    : size === "above"
    ? threshold + 1 + (seed % 5000)
    : 800_000 + (seed % 700_000)
  const out = Buffer.alloc(length)
  for (let offset = 0, block = 0; offset < length; offset += 32, block++) {
    createHash("sha256").update(`${seed}/${block}`).digest().copy(out, offset)
  }
  return out
}

type Command =
  | { readonly _tag: "Put"; readonly key: string; readonly size: Size; readonly seed: number }
  | { readonly _tag: "Delete"; readonly key: string }
  | {
    readonly _tag: "Atomic"
    readonly puts: ReadonlyArray<{ readonly key: string; readonly size: Size; readonly seed: number }>
  }

const size = fc.constantFrom<Size>("small", "at", "above", "large")
const key = fc.constantFrom(...keys)
const put = fc.record({ key, size, seed: fc.nat(1_000_000) })
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: put.map((p): Command => ({ _tag: "Put", ...p })) },
  { weight: 1, arbitrary: key.map((k): Command => ({ _tag: "Delete", key: k })) },
  {
    weight: 1,
    arbitrary: fc.uniqueArray(put, { minLength: 2, maxLength: 2, selector: (p) => p.key }).map((puts): Command => ({
      _tag: "Atomic",
      puts
    }))
  }
)

const same = (a: Uint8Array | undefined, b: Uint8Array | undefined) =>
  a !== undefined && b !== undefined && Buffer.compare(a, b) === 0

const ran = new Set<boolean>()

describe("large values, property", () => {
  it.live(
    "puts, deletes and atomic writes of values below and above 400 KB read back as the model says",
    () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.array(command, { minLength: 3, maxLength: 10 }),
            fc.boolean(),
            fc.boolean(),
            (commands, compress, partitioned) =>
              Effect.runPromise(Effect.scoped(Effect.gen(function*() {
                ran.add(partitioned)
                const location = { ...files.freshLocation(), ...(partitioned ? { partitions: layout } : {}) }
                const store = yield* openStore(location, {
                  client: files.client,
                  compression: compress ? "gzip" : "none"
                })
                const threshold = ValueChunks.largestWholeValue(location, "/p/a")
                const live = new Map<string, Uint8Array>()
                const puts = new Map<string, Array<{ readonly revision: string; readonly value: Uint8Array }>>()
                const record = (k: string, revision: string, value: Uint8Array) => {
                  live.set(k, value)
                  puts.set(k, [...(puts.get(k) ?? []), { revision, value }])
                }
                for (const c of commands) {
                  if (c._tag === "Put") {
                    const value = makeValue(c.size, c.seed, threshold)
                    record(c.key, (yield* store.put({ key: c.key, value })).revision, value)
                  } else if (c._tag === "Delete") {
                    const deleted = yield* Effect.result(store.delete(c.key))
                    expect(deleted._tag === "Success", c.key).toBe(live.has(c.key))
                    live.delete(c.key)
                  } else {
                    const values = c.puts.map((p) => makeValue(p.size, p.seed, threshold))
                    const revision = yield* store.atomicWrite(
                      c.puts.map((p, i) => ({
                        key: p.key,
                        condition: Condition.whatever,
                        action: Action.put(values[i]!)
                      }))
                    )
                    c.puts.forEach((p, i) => record(p.key, revision, values[i]!))
                  }
                  for (const k of keys) {
                    const got = yield* Effect.result(store.get(k))
                    if (live.has(k)) {
                      expect(got._tag === "Success" && same(got.success.value, live.get(k)), k).toBe(true)
                    } else expect(got._tag === "Failure" && got.failure._tag, k).toBe("NotFound")
                  }
                }
                const range = yield* store.getRange("/p/", "/r/~")
                expect(range.map((item) => item.key)).toEqual([...live.keys()].sort())
                for (const item of range) expect(same(item.value, live.get(item.key)), item.key).toBe(true)
                for (const [k, written] of puts) {
                  const history = (yield* Stream.runCollect(store.history(k))).filter((event) => event.op === "put")
                  expect(history.map((event) => event.revision), k).toEqual(written.map((w) => w.revision))
                  history.forEach((event, i) => expect(same(event.value, written[i]!.value), `${k} #${i}`).toBe(true))
                  const first = written[0]!
                  const past = yield* store.getAt(k, { _tag: "Revision", revision: first.revision })
                  expect(same(past.value, first.value), k).toBe(true)
                }
              })))
          ),
          { seed: Number(process.env.FC_SEED ?? 20_261_214), numRuns: Number(process.env.FC_RUNS ?? 6) }
        )
      ).pipe(
        // The fixed seed's runs cover both: one partition, and values spread across partitions.
        Effect.tap(() => Effect.sync(() => expect([...ran].sort()).toEqual([false, true])))
      ),
    300_000
  )
})
