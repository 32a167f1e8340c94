/**
 * Per-key actors: one mailbox per key serialises an instance's commands in
 * arrival order, with no lost update and no self-inflicted conflicts; idle
 * actors are passivated; contention past `maxConflicts` is a typed failure.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import type { Lease } from "../../../src/domain/Item.ts"
import { defaultActorOptions } from "../../../src/programs/store/KeyActors.ts"
import type { ActorOptions } from "../../../src/programs/store/KeyActors.ts"
import type { Store } from "../../../src/programs/store/Store.ts"
import { defaultStoreOptions } from "../../../src/programs/store/Store.ts"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import { eventually } from "../../worker/support.ts"
import {
  bytes,
  countOf,
  failedWith,
  faultyClient,
  isEventPut,
  openActors,
  outcomeTag,
  rawEventsOf,
  text
} from "./helpers.ts"

const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin))
const table = Effect.promise(() => tableOnce)

/** A store with a pass-through client whose log counts every request. */
const countingStore = Effect.gen(function*() {
  const location = yield* table
  const { client, log } = faultyClient(5, () => "pass")
  yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
  return { location, client, log, store: yield* openStore(location, { client }) }
})

describe("per-key actors", () => {
  it.live("a caller interrupted while its command runs leaves the key served: queued commands complete, the next reads", () =>
    Effect.gen(function*() {
      const { location, log, client, store } = yield* countingStore
      const key = "/actors/interrupted"
      yield* store.put({ key, value: bytes("v0") })
      // The next append of the key is held back, as a request stuck in the network; sent (or refused, its signal
      // aborted) two seconds later.
      let hold = true
      client.middlewareStack.add(
        (next) => async (args) => {
          if (hold && isEventPut(location, args.input)) {
            hold = false
            await new Promise((resolve) => setTimeout(resolve, 2_000))
          }
          return next(args)
        },
        { step: "initialize", name: "holdFirstAppend" }
      )
      // The key's actor is idle: this command runs in the caller's own fiber.
      const held = yield* Effect.forkChild(store.put({ key, value: bytes("held") }))
      yield* Effect.sleep("50 millis")
      const queued = yield* Effect.forkChild(
        Effect.all(Array.from({ length: 3 }, (_, i) => store.put({ key, value: bytes(`q${i}`) })), {
          concurrency: "unbounded"
        })
      )
      yield* Effect.sleep("50 millis")
      const queriesBefore = countOf(log.sent, "QueryCommand")
      yield* Fiber.interrupt(held)
      const leases = yield* Fiber.join(queued)
      expect(leases).toHaveLength(3)
      // The interrupted write's outcome is unknown to the actor: its cache was dropped and the key read again.
      expect(countOf(log.sent, "QueryCommand") - queriesBefore).toBeGreaterThanOrEqual(1)
      const events = yield* rawEventsOf(admin, location, key)
      expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1))
      expect(new Set(leases.map((lease) => lease.revision)).size).toBe(3)
      for (const lease of leases) expect(events.some((event) => event.revision === lease.revision)).toBe(true)
      expect(text((yield* store.get(key)).value)).toMatch(/^q[0-2]$/)
    }).pipe(Effect.scoped))

  it.live("50 concurrent puts to one key in one instance: 50 events, seqs 1..50, no conflicts, one read", () =>
    Effect.gen(function*() {
      const { location, log, store } = yield* countingStore
      const key = "/actors/puts"
      const leases = yield* Effect.all(
        Array.from({ length: 50 }, (_, i) => store.put({ key, value: bytes(`p${i}`) })),
        { concurrency: "unbounded" }
      )
      const events = yield* rawEventsOf(admin, location, key)
      expect(events.map((event) => event.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
      expect(new Set(events.map((event) => event.revision))).toEqual(new Set(leases.map((lease) => lease.revision)))
      // The mailbox serialised them: no append lost a race, and only the first command read the key.
      expect(countOf(log.serviceErrors, "ConditionalCheckFailedException")).toBe(0)
      expect(countOf(log.sent, "QueryCommand")).toBe(1)
      const last = leases.findIndex((lease) => lease.revision === events.at(-1)!.revision)
      expect(text((yield* store.get(key)).value)).toBe(`p${last}`)
    }).pipe(Effect.scoped))

  it.live("commands are applied in arrival order: a chain of 50 compareAndSwaps enqueued at once all succeed", () =>
    Effect.gen(function*() {
      const { location, log, store } = yield* countingStore
      const key = "/actors/chain"
      yield* store.create({ key, value: bytes("0") })
      // Each fiber runs until it waits on its reply, so the mailbox receives the commands in loop order.
      const fibers: Array<Fiber.Fiber<Lease, unknown>> = []
      for (let i = 1; i <= 50; i++) {
        fibers.push(
          yield* Effect.forkChild(
            store.compareAndSwap({ key, value: bytes(String(i - 1)) }, { key, value: bytes(String(i)) }),
            { startImmediately: true }
          )
        )
      }
      const exits = yield* Effect.forEach(fibers, (fiber) => Fiber.await(fiber))
      expect(exits.map((exit) => outcomeTag(exit))).toEqual(exits.map(() => "Success"))
      const events = yield* rawEventsOf(admin, location, key)
      expect(events.length).toBe(51)
      expect(events.slice(1).map((event) => event.revision))
        .toEqual(exits.map((exit) => Exit.isSuccess(exit) ? exit.value.revision : ""))
      expect(text((yield* store.get(key)).value)).toBe("50")
      expect(countOf(log.serviceErrors, "ConditionalCheckFailedException")).toBe(0)
    }).pipe(Effect.scoped))

  it.live("no lost update: 40 concurrent read-modify-write increments in one instance sum exactly", () =>
    Effect.gen(function*() {
      const { location, store } = yield* countingStore
      const key = "/actors/increments"
      yield* store.create({ key, value: bytes("0") })
      let retries = 0
      const increment = Effect.gen(function*() {
        while (true) {
          const item = yield* store.get(key)
          const next = bytes(String(Number(text(item.value)) + 1))
          const done = yield* store.conditionalUpdate({ ...item, value: next }).pipe(
            Effect.as(true),
            Effect.catchTag("IncorrectRevision", () =>
              Effect.sync(() => {
                retries++
                return false
              }))
          )
          if (done) return
        }
      })
      yield* Effect.all(Array.from({ length: 40 }, () => increment), { concurrency: "unbounded" })
      expect(text((yield* store.get(key)).value)).toBe("40")
      expect((yield* rawEventsOf(admin, location, key)).length).toBe(41)
      expect(retries).toBeGreaterThan(0)
    }).pipe(Effect.scoped))

  it.live(
    "passivation: 200 keys leave at most ~maxActors actors, idle actors go away, passivated keys reload",
    () =>
      Effect.gen(function*() {
        const location = yield* table
        const options: ActorOptions = { ...defaultActorOptions, maxActors: 10, idleMillis: 1000 }
        const { client, log } = faultyClient(5, () => "pass")
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const actors = yield* openActors(location, client, options)
        const put = (key: string, value: string) => actors.execute({ _tag: "Put", item: { key, value: bytes(value) } })

        let largest = 0
        for (let i = 0; i < 200; i++) {
          yield* put(`/passivate/${i}`, "1")
          largest = Math.max(largest, actors.size())
        }
        // LRU eviction runs just before a new actor joins, so the newest one comes on top: maxActors + 1 at most.
        expect(largest).toBeGreaterThanOrEqual(options.maxActors)
        expect(largest).toBeLessThanOrEqual(options.maxActors + 1)

        // The most recent key is still cached (no read); the oldest was evicted (one read to reload).
        const queries = () => countOf(log.sent, "QueryCommand")
        let before = queries()
        yield* put("/passivate/199", "2")
        expect(queries() - before).toBe(0)
        before = queries()
        yield* put("/passivate/0", "2")
        expect(queries() - before).toBe(1)
        expect((yield* rawEventsOf(admin, location, "/passivate/0")).map((event) => event.seq)).toEqual([1, 2])

        // Many keys at once: running actors are never evicted, so the size is bounded by concurrency + maxActors.
        yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => put(`/passivate/${i}`, "3"), {
          concurrency: 20
        })
        expect(actors.size()).toBeLessThanOrEqual(options.maxActors + 20)
        // After idleMillis (plus one passivation tick), every idle actor is gone: within seconds, however loaded the
        // machine is.
        yield* eventually("every idle actor passivated", Effect.sync(() => expect(actors.size()).toBe(0)), 10_000)
        // And a passivated key still gets the right next seq.
        yield* put("/passivate/7", "4")
        expect(actors.size()).toBe(1)
        expect((yield* rawEventsOf(admin, location, "/passivate/7")).map((event) => event.seq)).toEqual([1, 2, 3])
        expect(countOf(log.serviceErrors, "ConditionalCheckFailedException")).toBe(0)
      }).pipe(Effect.scoped),
    30_000
  )

  it.live("a cached write that loses to another instance's goes on from the winner it was told: no read, next seq", () =>
    Effect.gen(function*() {
      const location = yield* table
      const { client, log } = faultyClient(5, () => "pass")
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const mine = yield* openStore(location, { client })
      const other = yield* openStore(location)
      const key = "/contention/cached"
      yield* mine.put({ key, value: bytes("m1") })
      yield* other.put({ key, value: bytes("o1") })
      const queries = countOf(log.sent, "QueryCommand")
      const conflicts = countOf(log.serviceErrors, "ConditionalCheckFailedException")
      const lease = yield* mine.put({ key, value: bytes("m2") })
      // The losing append's answer named the winner (seq 2): the retry appended seq 3 without reading the key.
      expect(countOf(log.serviceErrors, "ConditionalCheckFailedException") - conflicts).toBe(1)
      expect(countOf(log.sent, "QueryCommand") - queries).toBe(0)
      expect((yield* rawEventsOf(admin, location, key)).map((event) => event.seq)).toEqual([1, 2, 3])
      const read = yield* other.get(key)
      expect([text(read.value), read.revision]).toEqual(["m2", lease.revision])
    }).pipe(Effect.scoped))

  it.live("maxConflicts 0: one conflict with another instance is a typed WriteContention, and the next write recovers", () =>
    Effect.gen(function*() {
      const location = yield* table
      const strict = yield* openStore(location, {
        storeOptions: { actors: { ...defaultStoreOptions.actors, maxConflicts: 0 } }
      })
      const other = yield* openStore(location)
      const key = "/contention/strict"
      yield* strict.put({ key, value: bytes("s1") })
      yield* other.put({ key, value: bytes("o1") })
      const exit = yield* Effect.exit(strict.put({ key, value: bytes("s2") }))
      expect(failedWith(exit, "WriteContention")).toBe(true)
      expect(String(Exit.isFailure(exit) ? exit.cause.reasons[0] : "")).toContain(key)
      expect(text((yield* other.get(key)).value)).toBe("o1")
      expect((yield* rawEventsOf(admin, location, key)).length).toBe(2)
      // The contention forgot the stale cache: the retry reads and appends seq 3.
      yield* strict.put({ key, value: bytes("s3") })
      expect((yield* rawEventsOf(admin, location, key)).map((event) => event.seq)).toEqual([1, 2, 3])
    }).pipe(Effect.scoped))

  for (const maxConflicts of [0, 1]) {
    it.live(
      `maxConflicts ${maxConflicts} under a hammering instance: some writes fail with WriteContention, none is lost or invented`,
      () =>
        Effect.gen(function*() {
          const location = yield* table
          const key = `/contention/hammer/${maxConflicts}`
          const victim = yield* openStore(location, {
            storeOptions: { actors: { ...defaultStoreOptions.actors, maxConflicts } }
          })
          const hammers: ReadonlyArray<Store["Service"]> = [yield* openStore(location), yield* openStore(location)]
          yield* victim.create({ key, value: bytes("start") })
          let stop = false
          let hammered = 0
          const hammerFailures: Array<string> = []
          const hammerFibers = yield* Effect.forEach(
            [0, 1, 2, 3],
            (n) =>
              Effect.forkChild(Effect.gen(function*() {
                while (!stop) {
                  const exit = yield* Effect.exit(hammers[n % 2]!.put({ key, value: bytes(`h${n}`) }))
                  // Collected, not asserted here: an assertion failing inside this fiber would silently stop the hammering.
                  if (Exit.isSuccess(exit)) hammered++
                  else hammerFailures.push(outcomeTag(exit))
                }
              }))
          )
          const outcomes: Array<string> = []
          let succeeded = 0
          const hammeredAtStart = hammered
          while (outcomes.length < 300 && !(outcomes.includes("WriteContention") && outcomes.length >= 20)) {
            const exit = yield* Effect.exit(victim.put({ key, value: bytes(`v${outcomes.length}`) }))
            outcomes.push(outcomeTag(exit))
            if (Exit.isSuccess(exit)) succeeded++
            else expect(failedWith(exit, "WriteContention"), outcomeTag(exit)).toBe(true)
          }
          const hammeredBeforeStop = hammered - hammeredAtStart
          stop = true
          yield* Effect.forEach(hammerFibers, (fiber) => Fiber.join(fiber), { discard: true })

          expect(hammerFailures.filter((tag) => tag !== "WriteContention")).toEqual([])
          // Under heavy machine load the hammers may not get a write in between the victim's; only then is no conflict fine.
          if (hammeredBeforeStop > 0) expect(outcomes).toContain("WriteContention")
          expect(new Set(outcomes).size).toBeLessThanOrEqual(2)
          // Exactly one event per success (the create, the hammers' and the victim's), seqs dense.
          const events = yield* rawEventsOf(admin, location, key)
          expect(events.length).toBe(1 + hammered + succeeded)
          expect(events.map((event) => event.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1))
        }).pipe(Effect.scoped),
      60_000
    )
  }
})
