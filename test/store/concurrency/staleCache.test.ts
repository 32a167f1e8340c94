/**
 * Stale caches: instance A caches a key's state in its actor, instance B
 * changes the key behind A's back, and A's next command must still decide on
 * the real state, succeeding or failing exactly as if its cache were fresh.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as fc from "fast-check"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import type { Store } from "../../../src/programs/store/Store.ts"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import { bytes, outcomeTag, rawEventsOf, text } from "./helpers.ts"

const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin))
const table = Effect.promise(() => tableOnce)

type StoreService = Store["Service"]

/** A revision no write ever returns (UUIDv7 shape, epoch 0). */
const unknownRevision = "00000000-0000-7000-8000-000000000000"

const twoStores = Effect.gen(function*() {
  const location = yield* table
  return { location, a: yield* openStore(location), b: yield* openStore(location) }
})

const tagOf = <A, E>(effect: Effect.Effect<A, E>) => Effect.map(Effect.exit(effect), (exit) => outcomeTag(exit))

describe("stale caches across instances", () => {
  it.live("A decides on the real state after B deleted the key", () =>
    Effect.gen(function*() {
      const { location, a, b } = yield* twoStores
      const lease = yield* a.put({ key: "/stale/deleted", value: bytes("a1") })
      yield* b.delete("/stale/deleted")
      expect(yield* tagOf(a.update({ key: "/stale/deleted", value: bytes("a2") }))).toBe("NotFound")
      expect(
        yield* tagOf(
          a.compareAndSwap({ key: "/stale/deleted", value: bytes("a1") }, { key: "/stale/deleted", value: bytes("a2") })
        )
      )
        .toBe("CompareFailed")
      expect(yield* tagOf(a.keepAlive(lease, Date.now() + 60_000))).toBe("NotFound")
      expect(yield* tagOf(a.conditionalDelete("/stale/deleted", lease.revision))).toBe("IncorrectRevision")
      expect(yield* tagOf(a.delete("/stale/deleted"))).toBe("NotFound")
      expect(yield* tagOf(a.create({ key: "/stale/deleted", value: bytes("a3") }))).toBe("Success")
      expect(text((yield* b.get("/stale/deleted")).value)).toBe("a3")
      expect((yield* rawEventsOf(admin, location, "/stale/deleted")).map((event) => event.op)).toEqual([
        "put",
        "delete",
        "put"
      ])
    }).pipe(Effect.scoped))

  it.live("A decides on the real state after B updated the key", () =>
    Effect.gen(function*() {
      const { location, a, b } = yield* twoStores
      const key = "/stale/updated"
      const mine = yield* a.put({ key, value: bytes("a1") })
      const theirs = yield* b.update({ key, value: bytes("b1") })
      expect(yield* tagOf(a.compareAndSwap({ key, value: bytes("a1") }, { key, value: bytes("a2") }))).toBe(
        "CompareFailed"
      )
      expect(yield* tagOf(a.conditionalUpdate({ key, value: bytes("a2"), revision: mine.revision }))).toBe(
        "IncorrectRevision"
      )
      expect(yield* tagOf(a.keepAlive(mine, Date.now() + 60_000))).toBe("IncorrectRevision")
      expect(yield* tagOf(a.create({ key, value: bytes("a2") }))).toBe("AlreadyExists")
      expect(text((yield* b.get(key)).value)).toBe("b1")
      // With the real state's value and revision, A succeeds although its cache knew neither.
      const c = yield* b.put({ key, value: bytes("b2") })
      yield* a.compareAndSwap({ key, value: bytes("b2") }, { key, value: bytes("a3") })
      expect(yield* tagOf(a.conditionalUpdate({ key, value: bytes("a4"), revision: c.revision }))).toBe(
        "IncorrectRevision"
      )
      const kept = yield* b.keepAlive({ key, revision: (yield* b.get(key)).revision }, Date.now() + 60_000)
      yield* a.conditionalUpdate({ key, value: bytes("a4"), revision: kept.revision })
      expect(theirs.revision).not.toBe(mine.revision)
      expect((yield* rawEventsOf(admin, location, key)).map((event) => event.op))
        .toEqual(["put", "put", "put", "put", "keep-alive", "put"])
      expect(text((yield* b.get(key)).value)).toBe("a4")
    }).pipe(Effect.scoped))

  it.live("A's put after several writes by B (including delete and create) is appended last, with the next seq", () =>
    Effect.gen(function*() {
      const { location, a, b } = yield* twoStores
      const key = "/stale/behind"
      yield* a.put({ key, value: bytes("a1") })
      for (let i = 0; i < 4; i++) yield* b.put({ key, value: bytes(`b${i}`) })
      yield* b.delete(key)
      yield* b.create({ key, value: bytes("b-created") })
      const lease = yield* a.put({ key, value: bytes("a2") })
      const events = yield* rawEventsOf(admin, location, key)
      expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      expect(events.at(-1)!.revision).toBe(lease.revision)
      for (const store of [a, b]) {
        const item = yield* store.get(key)
        expect(text(item.value)).toBe("a2")
        expect(item.revision).toBe(lease.revision)
      }
    }).pipe(Effect.scoped))

  it.live("B's atomicWrite behind A's back: A's cached state is stale, A still decides correctly", () =>
    Effect.gen(function*() {
      const { location, a, b } = yield* twoStores
      const key = "/stale/atomic"
      const lease = yield* a.create({ key, value: bytes("a1") })
      yield* b.atomicWrite([{ key, condition: Condition.revision(lease.revision), action: Action.delete }])
      expect(yield* tagOf(a.update({ key, value: bytes("a2") }))).toBe("NotFound")
      yield* a.create({ key, value: bytes("a3") })
      const revision = yield* b.atomicWrite([{ key, condition: Condition.exists, action: Action.put(bytes("b1")) }])
      expect(yield* tagOf(a.compareAndSwap({ key, value: bytes("a3") }, { key, value: bytes("a4") }))).toBe(
        "CompareFailed"
      )
      expect(yield* tagOf(a.conditionalUpdate({ key, value: bytes("a4"), revision }))).toBe("Success")
      expect((yield* rawEventsOf(admin, location, key)).map((event) => event.op)).toEqual([
        "put",
        "delete",
        "put",
        "put",
        "put"
      ])
    }).pipe(Effect.scoped))

  it.live(
    "model check: random interleavings of two instances' commands agree with a one-key model",
    () =>
      Effect.gen(function*() {
        const { location, a, b } = yield* twoStores
        let run = 0
        const opKinds = [
          "put",
          "create",
          "update",
          "delete",
          "cas",
          "conditionalUpdate",
          "conditionalDelete",
          "keepAlive",
          "get",
          "atomicWrite"
        ] as const
        type OpKind = typeof opKinds[number]
        const step = fc.record({ by: fc.constantFrom(0, 1), op: fc.constantFrom(...opKinds) })

        const property = fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 14 }), async (steps) => {
          const key = `/model/${run++}`
          const stores: ReadonlyArray<StoreService> = [a, b]
          // The model: the key's live value and revision. Each instance's memory: what it last wrote or read.
          let live: { value: string; revision: string } | undefined
          const seen: Array<{ value?: string; revision?: string }> = [{}, {}]
          let appended = 0
          for (const [index, { by, op }] of steps.entries()) {
            const store = stores[by]!
            const memory = seen[by]!
            const value = `v${index}`
            const rev = memory.revision ?? unknownRevision
            const revMatches = live !== undefined && live.revision === rev
            const expected: Record<OpKind, string> = {
              put: "Success",
              create: live ? "AlreadyExists" : "Success",
              update: live ? "Success" : "NotFound",
              delete: live ? "Success" : "NotFound",
              cas: live && live.value === (memory.value ?? "") ? "Success" : "CompareFailed",
              conditionalUpdate: revMatches ? "Success" : "IncorrectRevision",
              conditionalDelete: revMatches ? "Success" : "IncorrectRevision",
              keepAlive: !live ? "NotFound" : revMatches ? "Success" : "IncorrectRevision",
              get: live ? "Success" : "NotFound",
              atomicWrite: revMatches ? "Success" : "ConditionFailed"
            }
            const item = { key, value: bytes(value) }
            const effect: Effect.Effect<unknown, unknown> = {
              put: store.put(item),
              create: store.create(item),
              update: store.update(item),
              delete: store.delete(key),
              cas: store.compareAndSwap({ key, value: bytes(memory.value ?? "") }, item),
              conditionalUpdate: store.conditionalUpdate({ ...item, revision: rev }),
              conditionalDelete: store.conditionalDelete(key, rev),
              keepAlive: store.keepAlive({ key, revision: rev }, undefined),
              get: store.get(key),
              atomicWrite: store.atomicWrite([{
                key,
                condition: Condition.revision(rev),
                action: Action.put(bytes(value))
              }])
            }[op]
            const exit = await Effect.runPromise(Effect.exit(effect))
            expect(`${index} ${by === 0 ? "A" : "B"}.${op}: ${outcomeTag(exit)}`).toBe(
              `${index} ${by === 0 ? "A" : "B"}.${op}: ${expected[op]}`
            )
            if (Exit.isFailure(exit)) continue
            const result = exit.value as { revision?: string; value?: Uint8Array } | string | undefined
            if (op === "get") {
              const got = result as { revision: string; value: Uint8Array }
              expect({ value: text(got.value), revision: got.revision }).toEqual(live)
              seen[by] = { value: text(got.value), revision: got.revision }
              continue
            }
            appended++
            if (op === "delete" || op === "conditionalDelete") {
              live = undefined
              seen[by] = {}
            } else if (op === "keepAlive") {
              expect((result as { revision: string }).revision).toBe(live!.revision)
            } else {
              const revision = typeof result === "string" ? result : (result as { revision: string }).revision
              expect(revision).not.toBe(live?.revision)
              live = { value, revision }
              seen[by] = { ...live }
            }
          }
          // Both instances read the model's state, and the log has exactly one event per successful write.
          for (const store of stores) {
            const exit = await Effect.runPromise(Effect.exit(store.get(key)))
            if (live === undefined) expect(outcomeTag(exit)).toBe("NotFound")
            else {expect(Exit.isSuccess(exit) && { value: text(exit.value.value), revision: exit.value.revision })
                .toEqual(live)}
          }
          const events = await Effect.runPromise(rawEventsOf(admin, location, key))
          expect(events.map((event) => event.seq)).toEqual(Array.from({ length: appended }, (_, i) => i + 1))
        })
        yield* Effect.promise(() =>
          fc.assert(property, { seed: Number(process.env["FC_SEED"] ?? 20261125), numRuns: 25 })
        )
        expect(run).toBeGreaterThanOrEqual(25)
      }).pipe(Effect.scoped),
    120_000
  )
})
