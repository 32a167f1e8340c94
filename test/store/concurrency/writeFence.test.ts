/**
 * The write fence between stale caches and compaction (see `WriteFence`).
 * Compaction frees the sort keys of the events it moves, so a writer deciding
 * on an old cached state could append into a freed seq: acknowledged, yet
 * below the key's newest event and so invisible. A store whose fence fits the
 * compaction's settle time re-reads such a state first and decides right.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { isSafe } from "../../../src/domain/WriteFence.ts"
import type { WriteFence } from "../../../src/domain/WriteFence.ts"
import { defaultActorOptions } from "../../../src/programs/store/KeyActors.ts"
import { makeClient, openCompaction, openStore, provisionTable } from "../../support/TestStore.ts"
import type { TestTable } from "../../support/TestStore.ts"
import { bytes, text } from "./helpers.ts"

const settleMillis = 1200
const fenced: WriteFence = { maxStateAgeMillis: 100, writeTimeoutMillis: 500 }
const unfenced: WriteFence = { maxStateAgeMillis: 60 * 60_000, writeTimeoutMillis: 1000 }

/** A writes (and caches) a key, B writes it twice, everything settles and is compacted, then A compares-and-swaps from its cache. */
const staleCompareAndSwap = (location: TestTable, fence: WriteFence) =>
  Effect.gen(function*() {
    const client = makeClient()
    yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
    const a = yield* openStore(location, { client, storeOptions: { actors: { ...defaultActorOptions, fence } } })
    const b = yield* openStore(location, { client })
    const key = `/fence/${fence.maxStateAgeMillis}`
    yield* a.put({ key, value: bytes("a1") })
    yield* b.put({ key, value: bytes("b2") })
    yield* b.put({ key, value: bytes("b3") })
    yield* Effect.sleep(settleMillis + 200)
    const compaction = yield* openCompaction(location, client)
    const pass = yield* compaction.all(() => Effect.void, { settleMillis })
    // a1 and b2 have left the live range: seqs 1 and 2 are free again.
    expect(pass.pending).toEqual([])
    const swap = yield* Effect.exit(a.compareAndSwap({ key, value: bytes("a1") }, { key, value: bytes("a4") }))
    const now = text((yield* b.get(key)).value)
    return { swap: swap._tag === "Success" ? "Success" : "Failure", now }
  }).pipe(Effect.scoped)

describe("the write fence", () => {
  it.live(
    "a store within the fence re-reads an old cached state, so its compare-and-swap fails as it must",
    () =>
      Effect.gen(function*() {
        expect(isSafe(settleMillis, fenced, { skewMillis: 0, lateDeliveryMillis: 0 })).toBe(true)
        const location = yield* provisionTable(makeClient())
        expect(yield* staleCompareAndSwap(location, fenced)).toEqual({ swap: "Failure", now: "b3" })
      }),
    30_000
  )

  it.live(
    "the hazard it guards against: a store trusting an hour-old cache has its swap acknowledged and lost",
    () =>
      Effect.gen(function*() {
        expect(isSafe(settleMillis, unfenced, { skewMillis: 0, lateDeliveryMillis: 0 })).toBe(false)
        const location = yield* provisionTable(makeClient())
        // The swap "succeeds" on the stale cache, in the seq compaction freed, and is never visible.
        expect(yield* staleCompareAndSwap(location, unfenced)).toEqual({ swap: "Success", now: "b3" })
      }),
    30_000
  )
})
