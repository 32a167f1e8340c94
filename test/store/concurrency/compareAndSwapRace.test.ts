/**
 * Races of conditional writes: two (or more) callers start from the same
 * state at the same time; exactly one wins and every other gets its typed
 * compare failure, whether the callers share a store instance (one actor
 * serialises them) or not (the conditional append decides).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import type { Lease } from "../../../src/domain/Item.ts"
import type { Store } from "../../../src/programs/store/Store.ts"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import { bytes, failedWith, outcomeTag, rawEventsOf, text } from "./helpers.ts"

const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin))
const table = Effect.promise(() => tableOnce)

type StoreService = Store["Service"]

/** Runs the contenders at once and returns their exits in order. */
const race = <E>(contenders: ReadonlyArray<Effect.Effect<Lease, E>>) =>
  Effect.all(contenders.map((contender) => Effect.exit(contender)), { concurrency: "unbounded" })

/** Exactly one success, every other exit the typed `loserTag`; returns the winner's index and lease. */
const expectOneWinner = <E>(exits: ReadonlyArray<Exit.Exit<Lease, E>>, loserTag: string) => {
  const tags = exits.map((exit) => outcomeTag(exit))
  const winners = exits.flatMap((exit, index) => Exit.isSuccess(exit) ? [{ index, lease: exit.value }] : [])
  expect(winners.length, tags.join(",")).toBe(1)
  for (const exit of exits) if (Exit.isFailure(exit)) expect(failedWith(exit, loserTag), tags.join(",")).toBe(true)
  return winners[0]!
}

const rounds = 10

describe("compare-and-swap races", () => {
  it.live("two instances: compareAndSwap from the same expected value, 10 rounds, exactly one wins each round", () =>
    Effect.gen(function*() {
      const location = yield* table
      const a = yield* openStore(location)
      const b = yield* openStore(location)
      const key = "/cas/two-instances"
      yield* a.put({ key, value: bytes("start") })
      let expected = "start"
      for (let round = 0; round < rounds; round++) {
        // Both instances have the current value cached (the loser's cache is stale after the previous round).
        const before = (yield* rawEventsOf(admin, location, key)).length
        const exits = yield* race([
          a.compareAndSwap({ key, value: bytes(expected) }, { key, value: bytes(`a-${round}`) }),
          b.compareAndSwap({ key, value: bytes(expected) }, { key, value: bytes(`b-${round}`) })
        ])
        const winner = expectOneWinner(exits, "CompareFailed")
        expected = `${winner.index === 0 ? "a" : "b"}-${round}`
        for (const store of [a, b]) {
          const item = yield* store.get(key)
          expect(text(item.value)).toBe(expected)
          expect(item.revision).toBe(winner.lease.revision)
        }
        const events = yield* rawEventsOf(admin, location, key)
        expect(events.length).toBe(before + 1)
        expect(events.at(-1)!.revision).toBe(winner.lease.revision)
      }
    }).pipe(Effect.scoped))

  it.live("two instances with stale caches: the loser reports value-mismatch, not absent or a bogus success", () =>
    Effect.gen(function*() {
      const location = yield* table
      const a = yield* openStore(location)
      const b = yield* openStore(location)
      const key = "/cas/stale"
      yield* a.put({ key, value: bytes("v0") })
      yield* b.get(key) // b caches v0 too
      for (let round = 1; round <= rounds; round++) {
        const exits = yield* race([
          a.compareAndSwap({ key, value: bytes(`v${round - 1}`) }, { key, value: bytes(`v${round}`) }),
          b.compareAndSwap({ key, value: bytes(`v${round - 1}`) }, { key, value: bytes(`v${round}`) })
        ])
        expectOneWinner(exits, "CompareFailed")
        const loser = exits.find(Exit.isFailure)!
        expect(String(loser.cause.reasons[0])).toContain("value-mismatch")
      }
      expect((yield* rawEventsOf(admin, location, key)).length).toBe(rounds + 1)
      expect(text((yield* a.get(key)).value)).toBe(`v${rounds}`)
    }).pipe(Effect.scoped))

  it.live("one instance: concurrent compareAndSwaps from the same expected value, exactly one wins", () =>
    Effect.gen(function*() {
      const location = yield* table
      const a = yield* openStore(location)
      const key = "/cas/one-instance"
      yield* a.put({ key, value: bytes("start") })
      let expected = "start"
      for (let round = 0; round < rounds; round++) {
        const exits = yield* race(
          [0, 1, 2, 3].map((n) =>
            a.compareAndSwap({ key, value: bytes(expected) }, { key, value: bytes(`${n}-${round}`) })
          )
        )
        const winner = expectOneWinner(exits, "CompareFailed")
        expected = `${winner.index}-${round}`
        expect(text((yield* a.get(key)).value)).toBe(expected)
      }
      expect((yield* rawEventsOf(admin, location, key)).length).toBe(rounds + 1)
    }).pipe(Effect.scoped))

  it.live("conditionalUpdate from the same revision: exactly one wins, the loser gets IncorrectRevision (across and within instances)", () =>
    Effect.gen(function*() {
      const location = yield* table
      const a = yield* openStore(location)
      const b = yield* openStore(location)
      const key = "/cu/race"
      yield* a.put({ key, value: bytes("start") })
      for (let round = 0; round < rounds; round++) {
        const current = yield* b.get(key)
        // Across instances on even rounds, within instance a on odd rounds.
        const [first, second]: ReadonlyArray<StoreService> = round % 2 === 0 ? [a, b] : [a, a]
        const exits = yield* race([
          first!.conditionalUpdate({ ...current, value: bytes(`first-${round}`) }),
          second!.conditionalUpdate({ ...current, value: bytes(`second-${round}`) })
        ])
        const winner = expectOneWinner(exits, "IncorrectRevision")
        const item = yield* a.get(key)
        expect(text(item.value)).toBe(`${winner.index === 0 ? "first" : "second"}-${round}`)
        expect(item.revision).toBe(winner.lease.revision)
        expect(item.revision).not.toBe(current.revision)
        // The old revision is dead for everyone now.
        const late = yield* Effect.exit(b.conditionalDelete(key, current.revision))
        expect(outcomeTag(late)).toBe("IncorrectRevision")
      }
      expect((yield* rawEventsOf(admin, location, key)).length).toBe(rounds + 1)
    }).pipe(Effect.scoped))

  it.live("conditionalDelete against conditionalUpdate from the same revision: exactly one applies", () =>
    Effect.gen(function*() {
      const location = yield* table
      const a = yield* openStore(location)
      const b = yield* openStore(location)
      for (let round = 0; round < rounds; round++) {
        const key = `/cd/race/${round}`
        const lease = yield* a.put({ key, value: bytes("v") })
        const exits = yield* Effect.all([
          Effect.exit(a.conditionalUpdate({ key, value: bytes("updated"), revision: lease.revision })),
          Effect.exit(b.conditionalDelete(key, lease.revision))
        ], { concurrency: "unbounded" })
        const tags = exits.map((exit) => outcomeTag(exit))
        expect(tags.filter((tag) => tag === "Success").length, tags.join(",")).toBe(1)
        expect(tags.filter((tag) => tag === "IncorrectRevision").length, tags.join(",")).toBe(1)
        const events = yield* rawEventsOf(admin, location, key)
        expect(events.length).toBe(2)
        const found = yield* Effect.exit(b.get(key))
        if (tags[0] === "Success") expect(text(Exit.isSuccess(found) ? found.value.value : bytes("?"))).toBe("updated")
        else expect(outcomeTag(found)).toBe("NotFound")
      }
    }).pipe(Effect.scoped))

  it.live("create races: exactly one creator wins, the others get AlreadyExists (2 instances, 1 instance, 4 instances)", () =>
    Effect.gen(function*() {
      const location = yield* table
      const stores = [
        yield* openStore(location),
        yield* openStore(location),
        yield* openStore(location),
        yield* openStore(location)
      ]
      const [a, b] = stores as [StoreService, StoreService]
      const layouts: ReadonlyArray<readonly [string, ReadonlyArray<StoreService>]> = [
        ["across", [a, b]],
        ["within", [a, a]],
        ["many", [...stores, ...stores]]
      ]
      for (const [layout, contenders] of layouts) {
        for (let round = 0; round < rounds; round++) {
          const key = `/create/${layout}/${round}`
          // Warm the caches with "absent" on even rounds, so the losers decide on a stale state.
          if (round % 2 === 0) { for (const store of contenders) yield* Effect.exit(store.get(key)) }
          const exits = yield* race(contenders.map((store, n) => store.create({ key, value: bytes(`${layout}-${n}`) })))
          const winner = expectOneWinner(exits, "AlreadyExists")
          const events = yield* rawEventsOf(admin, location, key)
          expect(events.map((event) => [event.seq, event.revision])).toEqual([[1, winner.lease.revision]])
          for (const store of contenders) expect(text((yield* store.get(key)).value)).toBe(`${layout}-${winner.index}`)
        }
      }
    }).pipe(Effect.scoped))

  it.live("create after a racing delete: recreating a deleted key has exactly one winner too", () =>
    Effect.gen(function*() {
      const location = yield* table
      const a = yield* openStore(location)
      const b = yield* openStore(location)
      const key = "/create/recreate"
      for (let round = 0; round < rounds; round++) {
        const exits = yield* race([
          a.create({ key, value: bytes(`a${round}`) }),
          b.create({ key, value: bytes(`b${round}`) })
        ])
        const winner = expectOneWinner(exits, "AlreadyExists")
        expect(text((yield* a.get(key)).value)).toBe(`${winner.index === 0 ? "a" : "b"}${round}`)
        // Delete through the loser, whose cache may be stale.
        yield* (winner.index === 0 ? b : a).delete(key)
      }
      const events = yield* rawEventsOf(admin, location, key)
      expect(events.map((event) => event.op)).toEqual(Array.from({ length: rounds }, () => ["put", "delete"]).flat())
      expect(events.map((event) => event.seq)).toEqual(Array.from({ length: 2 * rounds }, (_, i) => i + 1))
    }).pipe(Effect.scoped))

  it.live("races on an expired item: one expire event, then exactly one create wins", () =>
    Effect.gen(function*() {
      const location = yield* table
      const stores = [yield* openStore(location), yield* openStore(location), yield* openStore(location)]
      for (let round = 0; round < 3; round++) {
        const key = `/create/expired/${round}`
        yield* stores[0]!.put({ key, value: bytes("short"), expires: Date.now() + 200 })
        for (const store of stores) yield* store.get(key) // every instance caches the live item
        yield* Effect.sleep("400 millis")
        const exits = yield* race(
          [...stores, ...stores].map((store, n) => store.create({ key, value: bytes(`c${n}`) }))
        )
        const winner = expectOneWinner(exits, "AlreadyExists")
        const events = yield* rawEventsOf(admin, location, key)
        expect(events.map((event) => event.op)).toEqual(["put", "expire", "put"])
        expect(events[2]!.revision).toBe(winner.lease.revision)
      }
    }).pipe(Effect.scoped))
})
