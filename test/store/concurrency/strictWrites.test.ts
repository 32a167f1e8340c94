/**
 * Strict write mode: every append is a transaction that also checks the event it was decided after is still the
 * key's newest, so no append can land in a seq compaction freed, whatever the timing. The scenario of issue 10's
 * defect 4 is refused even with the time fence switched off.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber } from "effect"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import * as Retention from "../../../src/domain/Retention.ts"
import type { WriteFence } from "../../../src/domain/WriteFence.ts"
import { defaultAtomicWriteOptions } from "../../../src/programs/store/AtomicWriter.ts"
import { defaultActorOptions } from "../../../src/programs/store/KeyActors.ts"
import { makeClient, openCompaction, openStore, provisionTable } from "../../support/TestStore.ts"
import { bytes, faultyClient, holdFirst, isTransaction, outcomeTag, rawEventsOf, text } from "./helpers.ts"
import { frozenTimers, lateAppendScenario } from "./lateAppendScenario.ts"

/** No time fence at all: a cached state is trusted for an hour. */
const noFence: WriteFence = { maxStateAgeMillis: 60 * 60_000, writeTimeoutMillis: 500 }
const strict = {
  actors: { ...defaultActorOptions, fence: noFence, writeMode: "strict" as const },
  atomicWrite: { ...defaultAtomicWriteOptions, fence: noFence, writeMode: "strict" as const }
}

describe("strict write mode", () => {
  it.live(
    "a conditional update delivered after the key was deleted and buried is refused: the key stays deleted",
    () =>
      Effect.gen(function*() {
        const { exit, after, raw } = yield* lateAppendScenario(strict, "strict")
        expect(outcomeTag(exit)).toBe("IncorrectRevision")
        expect(outcomeTag(after)).toBe("NotFound")
        expect(raw.filter((event) => event.op === "put")).toEqual([])
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "an atomic write delivered after the key was deleted and buried is refused on every key",
    () =>
      Effect.gen(function*() {
        const other = "/strict/atomic-other"
        const { exit, after, raw, b } = yield* lateAppendScenario(strict, "strict-atomic", (store, item) =>
          store.atomicWrite([
            { key: item.key, condition: Condition.revision(item.revision), action: Action.put(bytes("from-A")) },
            { key: other, condition: Condition.notExists, action: Action.put(bytes("other-A")) }
          ]))
        expect(outcomeTag(exit)).toBe("ConditionFailed")
        expect(outcomeTag(after)).toBe("NotFound")
        expect(raw.filter((event) =>
          event.op === "put"
        )).toEqual([])
        expect(outcomeTag(yield* Effect.exit(b.get(other)))).toBe("NotFound")
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a writer still deciding on a buried tombstone cannot append into the seq freed after the key was re-created",
    () =>
      Effect.gen(function*() {
        const client = makeClient()
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const location = yield* provisionTable(client)
        const a = yield* openStore(location, { client, storeOptions: strict })
        const b = yield* openStore(location, { client, storeOptions: strict })
        const compaction = yield* openCompaction(location, client)
        const compactAll = Effect.sleep(20).pipe(
          Effect.andThen(compaction.all(() => Effect.void, { settleMillis: 1 }))
        )
        const key = "/strict/grave"
        yield* a.put({ key, value: bytes("one") })
        yield* a.delete(key)
        yield* compactAll
        // C decides on the buried tombstone (seq 2) it reads, then its append is held back while B re-creates the
        // key, writes it again and compaction moves seq 3: the seq C's append names is free again.
        const slow = faultyClient(1, () => "pass").client
        const held = yield* holdFirst(slow, isTransaction)
        yield* Effect.addFinalizer(() => Effect.sync(() => slow.destroy()))
        const c = yield* openStore(location, { client: slow, storeOptions: strict })
        const put = yield* c.put({ key, value: bytes("c") }).pipe(
          Effect.provideService(Clock.Clock, frozenTimers(() => true, 10_000)),
          Effect.forkChild
        )
        yield* held.arrived
        yield* b.create({ key, value: bytes("b3") })
        yield* b.put({ key, value: bytes("b4") })
        yield* compactAll
        expect((yield* rawEventsOf(client, location, key)).map((event) => event.seq)).toEqual([4])
        yield* held.release
        const lease = yield* Fiber.join(put)
        const now = yield* b.get(key)
        expect(now.revision).toBe(lease.revision)
        expect(text(now.value)).toBe("c")
        expect((yield* rawEventsOf(client, location, key)).map((event) => event.seq)).toEqual([4, 5])
      }).pipe(Effect.scoped),
    30_000
  )

  for (const retention of [Retention.forever, Retention.none]) {
    it.live(
      `a create delivered after the key was created, written again and its seq 1 compacted (retention ${retention._tag}) is refused`,
      () =>
        Effect.gen(function*() {
          const client = makeClient()
          yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
          const location = yield* provisionTable(client)
          const b = yield* openStore(location, { client, storeOptions: strict })
          const compaction = yield* openCompaction(location, client)
          const key = `/strict/first-${retention._tag}`
          // A decides a create on a key with no event and no grave, then its transaction is held back while B
          // creates the key, writes it again and compaction moves seq 1 out of the live range: the seq A's
          // transaction names is free again, with no grave.
          const slow = faultyClient(1, () => "pass").client
          const held = yield* holdFirst(slow, isTransaction)
          yield* Effect.addFinalizer(() => Effect.sync(() => slow.destroy()))
          const a = yield* openStore(location, { client: slow, storeOptions: strict })
          const create = yield* a.create({ key, value: bytes("from-A") }).pipe(
            Effect.provideService(Clock.Clock, frozenTimers(() => true, 10_000)),
            Effect.exit,
            Effect.forkChild
          )
          yield* held.arrived
          yield* b.put({ key, value: bytes("v1") })
          const v2 = yield* b.put({ key, value: bytes("v2") })
          yield* Effect.sleep(20)
          yield* compaction.all(() => Effect.void, { settleMillis: 1, retention })
          expect((yield* rawEventsOf(client, location, key)).map((event) => event.seq)).toEqual([2])
          yield* held.release
          const exit = yield* Fiber.join(create)
          expect(held.count()).toBe(1)
          expect(outcomeTag(exit)).toBe("AlreadyExists")
          const now = yield* b.get(key)
          expect(now.revision).toBe(v2.revision)
          expect(text(now.value)).toBe("v2")
          expect((yield* rawEventsOf(client, location, key)).map((event) => event.seq)).toEqual([2])
        }).pipe(Effect.scoped),
      30_000
    )
  }

  it.live(
    "a strict atomic write creating 40 new keys, too many checks for one transaction, falls back and writes them all",
    () =>
      Effect.gen(function*() {
        const client = makeClient()
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const location = yield* provisionTable(client)
        // Big transactions on a shared DynamoDB Local take their time.
        const patient = { ...noFence, writeTimeoutMillis: 20_000 }
        const store = yield* openStore(location, {
          client,
          storeOptions: { ...strict, atomicWrite: { ...strict.atomicWrite, fence: patient } }
        })
        // 40 appends with a None predecessor take 40 × 3 items: more than a transaction's 100.
        const keys = Array.from({ length: 40 }, (_, index) => `/strict/many/${String(index).padStart(2, "0")}`)
        const revision = yield* store.atomicWrite(
          keys.map((key) => ({ key, condition: Condition.notExists, action: Action.put(bytes(key)) }))
        )
        for (const key of keys) {
          const item = yield* store.get(key)
          expect(item.revision).toBe(revision)
          expect(text(item.value)).toBe(key)
        }
        // 30 new keys take 90 items: still strict, and still written.
        const fewer = keys.slice(0, 30).map((key) => `${key}/fewer`)
        yield* store.atomicWrite(
          fewer.map((key) => ({ key, condition: Condition.notExists, action: Action.put(bytes("f")) }))
        )
        expect((yield* rawEventsOf(client, location, fewer[29]!)).map((event) => event.seq)).toEqual([1])
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a counter of strict writers with no time fence stays exact while compaction runs with no settle time",
    () =>
      Effect.gen(function*() {
        const client = makeClient()
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const location = yield* provisionTable(client)
        // A generous write timeout: an increment that timed out may have happened, and is not retried.
        const patient = { ...noFence, writeTimeoutMillis: 20_000 }
        const storeOptions = {
          actors: { ...strict.actors, fence: patient },
          atomicWrite: { ...strict.atomicWrite, fence: patient }
        }
        const stores = yield* Effect.forEach([1, 2, 3, 4], () => openStore(location, { client, storeOptions }))
        const compaction = yield* openCompaction(location, client)
        const key = "/strict/counter"
        yield* stores[0]!.put({ key, value: bytes("0") })
        let running = true
        const compacting = yield* compaction.all(() => Effect.void, { settleMillis: 1 }).pipe(
          Effect.andThen(Effect.sleep(20)),
          Effect.repeat({ while: () => running }),
          Effect.forkChild
        )
        const increment = (store: (typeof stores)[number]): Effect.Effect<void, unknown> =>
          Effect.gen(function*() {
            const item = yield* store.get(key)
            const next = String(Number(text(item.value)) + 1)
            const outcome = yield* Effect.exit(store.conditionalUpdate({ ...item, value: bytes(next) }))
            if (outcomeTag(outcome) === "IncorrectRevision") return yield* increment(store)
            // Anything else would leave the count unknown: the test fails on it.
            yield* outcome
          })
        yield* Effect.forEach(stores, (store) => Effect.repeat(increment(store), { times: 9 }), {
          concurrency: "unbounded",
          discard: true
        })
        running = false
        yield* Fiber.join(compacting)
        expect(text((yield* stores[3]!.get(key)).value)).toBe("40")
        // Compaction really ran: the superseded events left the live range.
        expect((yield* rawEventsOf(client, location, key)).length).toBeLessThan(41)
      }).pipe(Effect.scoped),
    60_000
  )
})
