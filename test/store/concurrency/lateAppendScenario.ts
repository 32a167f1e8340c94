/**
 * The scenario of issue 10's defect 4, shared by the late-acknowledgement and strict-mode tests: writer A decides a
 * conditional update, then is frozen (its request held back, its timers late) while writer B deletes the key and
 * compaction buries the tombstone, freeing the seq A's request names; then A's request lands.
 */
import { expect } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber } from "effect"
import type { Item } from "../../../src/domain/Item.ts"
import type { WriteFence } from "../../../src/domain/WriteFence.ts"
import type { Store, StoreOptions } from "../../../src/programs/store/Store.ts"
import { makeClient, openCompaction, openStore, provisionTable } from "../../support/TestStore.ts"
import { timersAdjusted } from "../../support/TimerClock.ts"
import { bytes, faultyClient, holdFirst, isEventPut, isTransaction, rawEventsOf } from "./helpers.ts"

/** Compaction's settle time, scaled down. */
export const settleMillis = 1600
/** The writers' fence, scaled down (safe for `settleMillis` but for late delivery). */
export const fence: WriteFence = { maxStateAgeMillis: 500, writeTimeoutMillis: 500 }

/**
 * The clock of a process frozen for `millis` once `frozen()` says so: time goes on, but its timers fire late (a
 * stopped process runs no timer; on waking, its request and its timeout race).
 */
export const frozenTimers = (frozen: () => boolean, millis: number): Clock.Clock =>
  timersAdjusted((duration) => frozen() ? Duration.sum(duration, Duration.millis(millis)) : duration)

/** Runs the scenario with A's store configured by `options`; returns A's outcome, B's read and the raw events. */
export const lateAppendScenario = (
  storeOptions: Partial<StoreOptions>,
  label: string,
  write: (store: Store["Service"], item: Item) => Effect.Effect<unknown, unknown> = (store, item) =>
    store.conditionalUpdate({ ...item, value: bytes("from-A") })
) =>
  Effect.gen(function*() {
    const plain = makeClient()
    yield* Effect.addFinalizer(() => Effect.sync(() => plain.destroy()))
    const location = yield* provisionTable(plain)
    const { client } = faultyClient(1, () => "pass")
    // Held back before the SDK sends it, as a frozen process would, until B's delete is buried.
    const held = yield* holdFirst(client, (input) => isEventPut(location, input) || isTransaction(input), {
      armed: false
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
    const a = yield* openStore(location, { client, storeOptions })
    const b = yield* openStore(location, { client: plain })
    const key = `/late/${label}`
    const v1 = yield* a.put({ key, value: bytes("v1") })
    const item = yield* a.get(key)
    expect(item.revision).toBe(v1.revision)
    // Let A's actor go idle, so the command below runs in a fiber with the frozen clock.
    yield* Effect.sleep(50)
    yield* held.arm
    const update = yield* write(a, item).pipe(
      Effect.provideService(Clock.Clock, frozenTimers(() => true, 10_000)),
      Effect.exit,
      Effect.forkChild
    )
    yield* held.arrived
    yield* b.delete(key)
    yield* Effect.sleep(settleMillis + 200)
    const compaction = yield* openCompaction(location, plain)
    yield* compaction.all(() => Effect.void, { settleMillis })
    yield* held.release
    const exit = yield* Fiber.join(update)
    expect(held.count()).toBe(1)
    const after = yield* Effect.exit(b.get(key))
    const raw = yield* rawEventsOf(plain, location, key)
    return { exit, after, raw, a, b, key }
  })
