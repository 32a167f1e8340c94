/**
 * A user projection run by the worker sees every event of every key it covers
 * exactly once (one worker, no restarts) and in seq order, and what it folds
 * the events into is the store's current state.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Key from "../../src/domain/Key.ts"
import { openStore } from "../support/TestStore.ts"
import {
  allEvents,
  bytes,
  eventually,
  fold,
  freshEnv,
  newestSeqs,
  recorder,
  seqsByKey,
  startWorker,
  text,
  workload
} from "../worker/support.ts"

const prefix = "/order/"
const keys = Array.from({ length: 15 }, (_, i) => `${prefix}k${String(i).padStart(2, "0")}`)

describe("projection order", () => {
  it.live(
    "300 writes over 15 keys: each key's seqs are applied exactly once, 1..n in order, and fold to the store's state",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-order")
        const store = yield* openStore(env.location, { client: env.client })
        const seen = recorder("order", [prefix])
        const worker = yield* startWorker(env, { group: "order", projections: [seen.projection] })

        yield* workload(store, keys, 300, 42)
        // Keys the projection does not cover: it must never be given them.
        yield* store.put({ key: "/elsewhere/a", value: bytes("x") })
        yield* store.put({ key: "/orde", value: bytes("x") })

        const log = yield* allEvents(env)
        const newest = newestSeqs(log.filter((event) => event.key.startsWith(prefix)))
        expect(newest.size).toBe(15)
        const total = [...newest.values()].reduce((sum, n) => sum + n, 0)
        expect(total).toBeGreaterThanOrEqual(300)

        yield* eventually(
          "the projection saw every key's newest seq",
          Effect.sync(() => {
            const applied = seqsByKey(seen.log)
            for (const [key, n] of newest) expect(applied.get(key)?.at(-1), key).toBe(n)
          }),
          30_000
        )

        // Exactly 1..n per key, in order: no gap, no duplicate, nothing reordered.
        const applied = seqsByKey(seen.log)
        expect([...applied.keys()].sort()).toEqual([...newest.keys()].sort())
        for (const [key, n] of newest) {
          expect(applied.get(key), key).toEqual(Array.from({ length: n }, (_, i) => i + 1))
        }
        // The projection was given the events as stored.
        const opOf = new Map((yield* allEvents(env)).map((event) => [`${event.key}#${event.seq}`, event]))
        for (const { event } of seen.log) {
          const stored = opOf.get(`${event.key}#${event.seq}`)
          expect(stored?.op).toBe(event.op)
          expect(stored?.revision).toBe(event.revision)
        }
        expect(seen.log.some(({ event }) => !event.key.startsWith(prefix))).toBe(false)

        // The fold of the applied events is the store's current state.
        const state = yield* store.getRange(prefix, Key.rangeEnd(prefix))
        const folded = [...fold(seen.log)].filter(([, entry]) => entry.value !== undefined).map((
          [key, entry]
        ) => [key, entry.value])
        expect(folded.sort()).toEqual(state.map((item) => [item.key, text(item.value)]).sort())

        const status = yield* worker.status
        expect(status.quarantined).toEqual([])
        expect(status.eventsApplied).toBeGreaterThanOrEqual(total)
        expect(status.shards.length).toBeGreaterThanOrEqual(1)
        expect(status.shards.reduce((sum, shard) => sum + shard.records, 0)).toBeGreaterThanOrEqual(total)
      }),
    90_000
  )
})
