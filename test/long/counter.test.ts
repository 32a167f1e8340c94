/**
 * A shared counter under contention: many workers on several store instances
 * increment one key with optimistic concurrency (read, then a revision-guarded
 * write, retried when the revision moved). No increment may be lost or
 * doubled: the final value and the raw event count must both be exact.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import { bytes, rawEventsOf, text } from "../store/concurrency/helpers.ts"
import { makeClient, openStore, provisionTable } from "../support/TestStore.ts"

const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin))
const table = Effect.promise(() => tableOnce)

const instances = 4
const workers = 20
const incrementsPerWorker = 10
const total = workers * incrementsPerWorker

interface Tally {
  attempts: number
  conditionFailures: number
}

type Increment = (store: Store["Service"], key: string, tally: Tally) => Effect.Effect<string, unknown>

/** get + atomicWrite([{ Revision(rev), Put(n+1) }]), retried on ConditionFailed; returns the written revision. */
const incrementAtomically: Increment = (store, key, tally) =>
  Effect.gen(function*() {
    while (true) {
      tally.attempts++
      const item = yield* store.get(key)
      const next = Number(text(item.value)) + 1
      const written = yield* store.atomicWrite([
        { key, condition: Condition.revision(item.revision), action: Action.put(bytes(String(next))) }
      ]).pipe(Effect.catchTag("ConditionFailed", () => Effect.succeed(undefined)))
      if (written !== undefined) return written
      tally.conditionFailures++
    }
  })

/** get + conditionalUpdate(rev), retried on IncorrectRevision: the same protocol through the actors. */
const incrementByRevision: Increment = (store, key, tally) =>
  Effect.gen(function*() {
    while (true) {
      tally.attempts++
      const item = yield* store.get(key)
      const next = Number(text(item.value)) + 1
      const lease = yield* store.conditionalUpdate({ ...item, value: bytes(String(next)) }).pipe(
        Effect.catchTag("IncorrectRevision", () => Effect.succeed(undefined))
      )
      if (lease !== undefined) return lease.revision
      tally.conditionFailures++
    }
  })

/** compareAndSwap(n → n+1), retried on CompareFailed. */
const incrementByValue: Increment = (store, key, tally) =>
  Effect.gen(function*() {
    while (true) {
      tally.attempts++
      const item = yield* store.get(key)
      const next = Number(text(item.value)) + 1
      const lease = yield* store.compareAndSwap({ key, value: item.value }, { key, value: bytes(String(next)) }).pipe(
        Effect.catchTag("CompareFailed", () => Effect.succeed(undefined))
      )
      if (lease !== undefined) return lease.revision
      tally.conditionFailures++
    }
  })

const runCounter = (key: string, increment: Increment) =>
  Effect.gen(function*() {
    const location = yield* table
    const stores: Array<Store["Service"]> = []
    for (let i = 0; i < instances; i++) stores.push(yield* openStore(location))
    const created = yield* stores[0]!.create({ key, value: bytes("0") })
    const tally: Tally = { attempts: 0, conditionFailures: 0 }

    const revisions = yield* Effect.all(
      Array.from({ length: workers }, (_, worker) =>
        Effect.forEach(
          Array.from({ length: incrementsPerWorker }),
          () => increment(stores[worker % instances]!, key, tally)
        )),
      { concurrency: "unbounded" }
    ).pipe(Effect.map((perWorker) => perWorker.flat()))

    // Every instance reads the exact total.
    for (const store of stores) expect(text((yield* store.get(key)).value)).toBe(String(total))
    // The raw table: the create plus exactly one put per increment, seqs dense, nothing else.
    const events = yield* rawEventsOf(admin, location, key)
    expect(events.length).toBe(total + 1)
    expect(events.every((event) => event.op === "put")).toBe(true)
    expect(events.map((event) => event.seq)).toEqual(Array.from({ length: total + 1 }, (_, i) => i + 1))
    // Each successful increment is exactly one event, and each event is a reported success (or the create).
    expect(new Set(revisions).size).toBe(total)
    expect(new Set(events.map((event) => event.revision))).toEqual(new Set([created.revision, ...revisions]))
    // It was a real race: some attempts lost and were retried.
    expect(tally.attempts).toBe(total + tally.conditionFailures)
    expect(tally.conditionFailures).toBeGreaterThan(0)
    return tally
  }).pipe(Effect.scoped)

describe("counter under contention", () => {
  it.live(
    `${workers} workers on ${instances} instances, get + atomicWrite(Revision) → exactly ${total}`,
    () => runCounter("/counter/atomic", incrementAtomically),
    120_000
  )

  it.live(
    `${workers} workers on ${instances} instances, get + conditionalUpdate → exactly ${total}`,
    () => runCounter("/counter/conditional-update", incrementByRevision),
    120_000
  )

  it.live(
    `${workers} workers on ${instances} instances, compareAndSwap → exactly ${total}`,
    () => runCounter("/counter/cas", incrementByValue),
    120_000
  )
})
