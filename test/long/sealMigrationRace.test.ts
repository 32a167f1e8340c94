/**
 * Writers racing a seal migration (see `SealMigration`): two store instances increment counters by compare-and-swap
 * under a prefix that is being sealed, while two migration runs move the same keys at once. Every acknowledged
 * increment is in the key's history, in one dense seq numbering (no fork, no lost write), round after round (each
 * round sealing a prefix of its own: a store without a prefix sealed before is refused, see `LayoutFence`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import * as SealMigration from "../../src/programs/store/SealMigration.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import { eventTableLayer, openCompaction, openStore, tablePerFile, testLayoutLease } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"

const { client, freshLocation } = tablePerFile("sealrace")
const bytes = (value: string) => new TextEncoder().encode(value)
const text = (value: Uint8Array) => new TextDecoder().decode(value)
// Each round seals a prefix of its own: one sealed before is recorded, and a store without it is refused.
const sealedUpTo = (rounds: number): ReadonlyArray<SealedPrefix> =>
  Array.from({ length: rounds }, (_, round) => ({ prefix: `/race${round}/`, seal: "rest" }))

const migrate = (location: TestTable, sealed: ReadonlyArray<SealedPrefix>) =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(eventTableLayer(location, { client }))
    return yield* SealMigration.run(sealed, { concurrency: 3, lease: testLayoutLease }).pipe(Effect.provide(context))
  }))

/** Increments by compare-and-swap until it wins; the revision it wrote. */
const increment = (store: Store["Service"], key: string): Effect.Effect<string> =>
  Effect.gen(function*() {
    while (true) {
      const current = yield* store.get(key)
      const next = String(Number(text(current.value)) + 1)
      const swapped = yield* Effect.result(store.compareAndSwap(current, { key, value: bytes(next) }))
      if (swapped._tag === "Success") return swapped.success.revision
      if (swapped.failure._tag !== "CompareFailed") return yield* Effect.die(swapped.failure)
    }
  }).pipe(Effect.orDie)

describe("writers racing a seal migration", () => {
  it.live("lose no acknowledged increment and fork no key's numbering", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const compaction = yield* openCompaction(location, client)
      const rounds = 4
      const keysPerRound = 6
      const perStore = 4
      for (let round = 0; round < rounds; round++) {
        const keys = Array.from({ length: keysPerRound }, (_, index) => `/race${round}/k${index}`)
        // A store with the prefixes sealed so far writes this round's keys in clear.
        const clear = yield* openStore(location, { client, storeOptions: { sealed: sealedUpTo(round) } })
        for (const key of keys) for (let i = 0; i < 3; i++) yield* clear.put({ key, value: bytes("0") })
        if (round % 2 === 1) yield* compaction.all(() => Effect.void, { settleMillis: 0 })
        // Opened per round, so each opens with the round's keys in clear (in migrating mode).
        const sealed = sealedUpTo(round + 1)
        const a = yield* openStore(location, { client, storeOptions: { sealed } })
        const b = yield* openStore(location, { client, storeOptions: { sealed } })
        const acked = new Map<string, Array<string>>(keys.map((key) => [key, []]))
        const writers = Effect.forEach(
          keys.flatMap((key) => [...Array(perStore).fill([a, key]), ...Array(perStore).fill([b, key])]),
          ([store, key]: [Store["Service"], string]) =>
            Effect.map(increment(store, key), (revision) => void acked.get(key)!.push(revision)),
          { concurrency: "unbounded", discard: true }
        )
        const [first, second] = yield* Effect.all([migrate(location, sealed), migrate(location, sealed), writers], {
          concurrency: "unbounded"
        })
        expect([...first, ...second].map((report) => report.failed)).toEqual(Array(2 * sealed.length).fill(0))
        for (const key of keys) {
          expect(text((yield* a.get(key)).value)).toBe(String(2 * perStore))
          const history = yield* Stream.runCollect(b.history(key))
          expect(history.map((event) => event.seq)).toEqual(Array.from({ length: 3 + 2 * perStore }, (_, i) => i + 1))
          expect(history.map((event) => text(event.value ?? new Uint8Array()))).toEqual([
            "0",
            "0",
            ...Array.from({ length: 2 * perStore + 1 }, (_, i) => String(i))
          ])
          const revisions = new Set(history.map((event) => event.revision))
          for (const revision of acked.get(key)!) expect(revisions.has(revision)).toBe(true)
        }
      }
      const last = yield* migrate(location, sealedUpTo(rounds))
      expect(last).toEqual(
        sealedUpTo(rounds).map(({ prefix }) => ({ prefix, found: 0, moved: 0, failed: 0, done: true }))
      )
    }), 180_000)
})
