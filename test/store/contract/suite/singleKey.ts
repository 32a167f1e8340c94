/**
 * Contract of the single-key operations: every success, every typed error
 * with its fields, and how revisions move.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { Action, Condition } from "../../../../src/domain/AtomicWrite.ts"
import {
  AlreadyExists,
  BadParameter,
  CompareFailed,
  ConditionFailed,
  IncorrectRevision,
  NotFound
} from "../../../../src/domain/Errors.ts"
import { bytes, text, uniquePrefix } from "./Backend.ts"
import type { ContractBackend } from "./Backend.ts"

/** single-key operations: every success, every typed error with its fields, and how revisions move */
export const singleKeyContract = (backend: ContractBackend) =>
  describe(`single-key operations (${backend.name})`, () => {
    const s = backend.storage("contract-single")

    const isRevision = (revision: string) =>
      expect(revision).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)

    describe("create", () => {
      it.effect("stores a new item and returns its lease; get returns the same revision", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("create")}a`
          const lease = yield* store.create({ key, value: bytes("one") })
          expect(lease.key).toBe(key)
          isRevision(lease.revision)
          const item = yield* store.get(key)
          expect(item).toEqual({ key, value: bytes("one"), expires: undefined, revision: lease.revision })
        }))

      it.effect("fails with AlreadyExists (naming the key) on a live item and writes nothing", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("create")}dup`
          const lease = yield* store.create({ key, value: bytes("first") })
          const error = yield* Effect.flip(store.create({ key, value: bytes("second") }))
          expect(error).toBeInstanceOf(AlreadyExists)
          expect(error._tag).toBe("AlreadyExists")
          if (error._tag === "AlreadyExists") expect(error.key).toBe(key)
          expect(error.message).toContain(key)
          const item = yield* store.get(key)
          expect(text(item.value)).toBe("first")
          expect(item.revision).toBe(lease.revision)
          expect(yield* s.ops(key)).toEqual(["put"])
        }))

      it.effect("succeeds again after the item was deleted, with a new revision", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("create")}again`
          const first = yield* store.create({ key, value: bytes("1") })
          yield* store.delete(key)
          const second = yield* store.create({ key, value: bytes("2") })
          expect(second.revision).not.toBe(first.revision)
          expect(text((yield* store.get(key)).value)).toBe("2")
          expect(yield* s.ops(key)).toEqual(["put", "delete", "put"])
        }))
    })

    describe("put and update", () => {
      it.effect("put upserts; every write gets a new revision that get returns", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("put")}k`
          const now = yield* Clock.currentTimeMillis
          const revisions = new Set<string>()
          for (const [index, value] of ["a", "b", "c"].entries()) {
            const expires = index === 1 ? now + 60_000 : undefined
            const lease = yield* store.put({ key, value: bytes(value), expires })
            expect(lease.key).toBe(key)
            revisions.add(lease.revision)
            const item = yield* store.get(key)
            expect(item).toEqual({ key, value: bytes(value), expires, revision: lease.revision })
          }
          expect(revisions.size).toBe(3)
        }))

      it.effect("update replaces a live item with a new revision", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("update")}k`
          const first = yield* store.put({ key, value: bytes("old") })
          const updated = yield* store.update({ key, value: bytes("new") })
          expect(updated.key).toBe(key)
          expect(updated.revision).not.toBe(first.revision)
          expect(yield* store.get(key)).toEqual({
            key,
            value: bytes("new"),
            expires: undefined,
            revision: updated.revision
          })
        }))

      it.effect("update fails with NotFound on a missing or deleted key and writes nothing", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const prefix = uniquePrefix("update")
          const missing = yield* Effect.flip(store.update({ key: `${prefix}missing`, value: bytes("x") }))
          expect(missing).toEqual(new NotFound({ key: `${prefix}missing` }))
          expect(yield* s.ops(`${prefix}missing`)).toEqual([])
          yield* store.put({ key: `${prefix}gone`, value: bytes("x") })
          yield* store.delete(`${prefix}gone`)
          const gone = yield* Effect.flip(store.update({ key: `${prefix}gone`, value: bytes("y") }))
          expect(gone._tag).toBe("NotFound")
          expect(gone).toMatchObject({ key: `${prefix}gone` })
          expect(yield* s.ops(`${prefix}gone`)).toEqual(["put", "delete"])
        }))
    })

    describe("compareAndSwap", () => {
      it.effect("swaps when the stored bytes equal the expected value", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("cas")}k`
          const first = yield* store.put({ key, value: bytes("v1") })
          const swapped = yield* store.compareAndSwap({ key, value: bytes("v1") }, { key, value: bytes("v2") })
          expect(swapped.key).toBe(key)
          expect(swapped.revision).not.toBe(first.revision)
          expect(yield* store.get(key)).toMatchObject({ value: bytes("v2"), revision: swapped.revision })
        }))

      it.effect("fails with CompareFailed value-mismatch on different bytes (even a prefix), writing nothing", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("cas")}k`
          const lease = yield* store.put({ key, value: bytes("value") })
          for (const expected of ["other", "valu", "value!", ""]) {
            const error = yield* Effect.flip(
              store.compareAndSwap({ key, value: bytes(expected) }, { key, value: bytes("x") })
            )
            expect(error).toEqual(new CompareFailed({ key, reason: "value-mismatch" }))
          }
          expect(yield* store.get(key)).toMatchObject({ value: bytes("value"), revision: lease.revision })
          expect(yield* s.ops(key)).toEqual(["put"])
        }))

      it.effect("fails with CompareFailed absent on a missing or deleted key", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("cas")}k`
          const missing = yield* Effect.flip(
            store.compareAndSwap({ key, value: bytes("") }, { key, value: bytes("x") })
          )
          expect(missing).toEqual(new CompareFailed({ key, reason: "absent" }))
          yield* store.put({ key, value: bytes("v") })
          yield* store.delete(key)
          const deleted = yield* Effect.flip(
            store.compareAndSwap({ key, value: bytes("v") }, { key, value: bytes("x") })
          )
          expect(deleted).toEqual(new CompareFailed({ key, reason: "absent" }))
          expect(yield* s.ops(key)).toEqual(["put", "delete"])
        }))

      it.effect("fails with BadParameter when the keys differ, and writes nothing to either key", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const prefix = uniquePrefix("cas")
          yield* store.put({ key: `${prefix}a`, value: bytes("v") })
          yield* store.put({ key: `${prefix}b`, value: bytes("v") })
          const before = yield* s.snapshot()
          const error = yield* Effect.flip(
            store.compareAndSwap({ key: `${prefix}a`, value: bytes("v") }, { key: `${prefix}b`, value: bytes("new") })
          )
          expect(error).toBeInstanceOf(BadParameter)
          expect(error).toMatchObject({ _tag: "BadParameter", field: "replaceWith.key" })
          expect(yield* s.snapshot()).toBe(before)
        }))
    })

    describe("conditionalUpdate and conditionalDelete", () => {
      it.effect("conditionalUpdate succeeds with the live revision and fails on a stale or empty one", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("cu")}k`
          yield* store.put({ key, value: bytes("v1") })
          const item = yield* store.get(key)
          const lease = yield* store.conditionalUpdate({ ...item, value: bytes("v2") })
          expect(lease.key).toBe(key)
          expect(lease.revision).not.toBe(item.revision)
          expect(yield* store.get(key)).toMatchObject({ value: bytes("v2"), revision: lease.revision })

          const stale = yield* Effect.flip(store.conditionalUpdate({ ...item, value: bytes("v3") }))
          expect(stale).toEqual(new IncorrectRevision({ key, expected: item.revision }))
          const empty = yield* Effect.flip(store.conditionalUpdate({ key, value: bytes("v3"), revision: "" }))
          expect(empty).toEqual(new IncorrectRevision({ key, expected: "" }))
          expect(empty.message).toContain("<empty>")
          expect(yield* store.get(key)).toMatchObject({ value: bytes("v2"), revision: lease.revision })
          expect(yield* s.ops(key)).toEqual(["put", "put"])
        }))

      it.effect("conditionalUpdate on a missing key fails with IncorrectRevision", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("cu")}missing`
          const error = yield* Effect.flip(
            store.conditionalUpdate({ key, value: bytes("x"), revision: "some-revision" })
          )
          expect(error).toEqual(new IncorrectRevision({ key, expected: "some-revision" }))
          expect(yield* s.ops(key)).toEqual([])
        }))

      it.effect("conditionalDelete deletes with the live revision and fails on stale, empty or missing", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("cd")}k`
          const old = yield* store.put({ key, value: bytes("v1") })
          const live = yield* store.put({ key, value: bytes("v2") })
          const stale = yield* Effect.flip(store.conditionalDelete(key, old.revision))
          expect(stale).toEqual(new IncorrectRevision({ key, expected: old.revision }))
          const empty = yield* Effect.flip(store.conditionalDelete(key, ""))
          expect(empty).toEqual(new IncorrectRevision({ key, expected: "" }))
          expect((yield* store.get(key)).revision).toBe(live.revision)

          yield* store.conditionalDelete(key, live.revision)
          expect(yield* Effect.flip(store.get(key))).toEqual(new NotFound({ key }))
          const again = yield* Effect.flip(store.conditionalDelete(key, live.revision))
          expect(again).toEqual(new IncorrectRevision({ key, expected: live.revision }))
          expect(yield* s.ops(key)).toEqual(["put", "put", "delete"])
        }))
    })

    describe("get and delete", () => {
      it.effect("get fails with NotFound on a key never written", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("get")}nothing`
          const error = yield* Effect.flip(store.get(key))
          expect(error).toBeInstanceOf(NotFound)
          expect(error).toMatchObject({ _tag: "NotFound", key })
          expect(error.message).toBe(`key not found: ${key}`)
        }))

      it.effect("delete removes a live item; deleting again or a missing key fails with NotFound", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const prefix = uniquePrefix("delete")
          yield* store.put({ key: `${prefix}k`, value: bytes("v") })
          yield* store.delete(`${prefix}k`)
          expect(yield* Effect.flip(store.get(`${prefix}k`))).toEqual(new NotFound({ key: `${prefix}k` }))
          expect(yield* Effect.flip(store.delete(`${prefix}k`))).toEqual(new NotFound({ key: `${prefix}k` }))
          expect(yield* Effect.flip(store.delete(`${prefix}missing`))).toEqual(
            new NotFound({ key: `${prefix}missing` })
          )
          expect(yield* s.ops(`${prefix}k`)).toEqual(["put", "delete"])
          expect(yield* s.ops(`${prefix}missing`)).toEqual([])
        }))

      it.effect("a second store instance sees the first one's writes and errors", () =>
        Effect.gen(function*() {
          const one = yield* s.open()
          const two = yield* s.open()
          const key = `${uniquePrefix("two")}k`
          const lease = yield* one.put({ key, value: bytes("from one") })
          expect(yield* two.get(key)).toMatchObject({ value: bytes("from one"), revision: lease.revision })
          expect(yield* Effect.flip(two.create({ key, value: bytes("x") }))).toEqual(new AlreadyExists({ key }))
          const updated = yield* two.update({ key, value: bytes("from two") })
          // one's actor cached the old state: its conditional writes must still see two's write.
          const stale = yield* Effect.flip(one.conditionalUpdate({ key, value: bytes("x"), revision: lease.revision }))
          expect(stale).toEqual(new IncorrectRevision({ key, expected: lease.revision }))
          expect(yield* one.get(key)).toMatchObject({ value: bytes("from two"), revision: updated.revision })
        }))
    })

    describe("races between store instances", () => {
      it.effect("concurrent creates of one key: exactly one wins, the others get AlreadyExists", () =>
        Effect.gen(function*() {
          const stores = [yield* s.open(), yield* s.open(), yield* s.open()]
          const key = `${uniquePrefix("race")}create`
          const outcomes = yield* Effect.all(
            stores.flatMap((store, i) =>
              [0, 1].map((j) => Effect.result(store.create({ key, value: bytes(`${i}-${j}`) })))
            ),
            { concurrency: "unbounded" }
          )
          const winners = outcomes.filter((outcome) => outcome._tag === "Success")
          expect(winners).toHaveLength(1)
          for (const outcome of outcomes) {
            if (outcome._tag === "Failure") expect(outcome.failure).toEqual(new AlreadyExists({ key }))
          }
          const winner = winners[0]!
          if (winner._tag === "Success") expect((yield* stores[2]!.get(key)).revision).toBe(winner.success.revision)
          expect(yield* s.ops(key)).toEqual(["put"])
        }))

      it.effect("concurrent compareAndSwaps expecting the same value: exactly one wins", () =>
        Effect.gen(function*() {
          const stores = [yield* s.open(), yield* s.open()]
          const key = `${uniquePrefix("race")}cas`
          yield* stores[0]!.put({ key, value: bytes("start") })
          for (const store of stores) yield* store.get(key)
          const outcomes = yield* Effect.all(
            Array.from({ length: 6 }, (_, i) =>
              Effect.result(
                stores[i % 2]!.compareAndSwap({ key, value: bytes("start") }, { key, value: bytes(`swap ${i}`) })
              )),
            { concurrency: "unbounded" }
          )
          expect(outcomes.filter((outcome) => outcome._tag === "Success")).toHaveLength(1)
          for (const outcome of outcomes) {
            if (outcome._tag === "Failure") {
              expect(outcome.failure).toEqual(new CompareFailed({ key, reason: "value-mismatch" }))
            }
          }
          expect(yield* s.ops(key)).toEqual(["put", "put"])
        }))
    })

    describe("keepAlive", () => {
      it.effect("sets a new expiry and keeps the revision, with or without the lease's revision", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const key = `${uniquePrefix("keepalive")}k`
          const now = yield* Clock.currentTimeMillis
          const lease = yield* store.put({ key, value: bytes("v"), expires: now + 1_000 })
          const kept = yield* store.keepAlive(lease, now + 10_000)
          expect(kept).toEqual({ key, revision: lease.revision })
          expect(yield* store.get(key)).toEqual({
            key,
            value: bytes("v"),
            expires: now + 10_000,
            revision: lease.revision
          })
          const keptAgain = yield* store.keepAlive({ key, revision: "" }, now + 20_000)
          expect(keptAgain.revision).toBe(lease.revision)
          expect((yield* store.get(key)).expires).toBe(now + 20_000)
          // the lease stays valid for revision-guarded writes
          const cleared = yield* store.keepAlive(lease, undefined)
          expect(cleared.revision).toBe(lease.revision)
          expect((yield* store.get(key)).expires).toBeUndefined()
          const updated = yield* store.conditionalUpdate({ key, value: bytes("w"), revision: lease.revision })
          expect(updated.revision).not.toBe(lease.revision)
          expect(yield* s.ops(key)).toEqual(["put", "keep-alive", "keep-alive", "keep-alive", "put"])
        }))

      it.effect("fails with IncorrectRevision on a stale lease and NotFound on a missing or deleted key", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const prefix = uniquePrefix("keepalive")
          const key = `${prefix}k`
          const old = yield* store.put({ key, value: bytes("v1") })
          const live = yield* store.put({ key, value: bytes("v2") })
          const stale = yield* Effect.flip(store.keepAlive(old, 5_000))
          expect(stale).toEqual(new IncorrectRevision({ key, expected: old.revision }))
          expect((yield* store.get(key)).expires).toBeUndefined()
          const missing = yield* Effect.flip(store.keepAlive({ key: `${prefix}missing`, revision: "" }, 5_000))
          expect(missing).toEqual(new NotFound({ key: `${prefix}missing` }))
          yield* store.delete(key)
          const deleted = yield* Effect.flip(store.keepAlive(live, 5_000))
          expect(deleted).toEqual(new NotFound({ key }))
          expect(yield* s.ops(key)).toEqual(["put", "put", "delete"])
        }))
    })

    describe("atomicWrite", () => {
      it.effect("applies every action with one shared revision, or nothing when a condition fails", () =>
        Effect.gen(function*() {
          const store = yield* s.open()
          const prefix = uniquePrefix("atomic")
          const a = yield* store.put({ key: `${prefix}a`, value: bytes("a1") })
          yield* store.put({ key: `${prefix}c`, value: bytes("c1") })
          const revision = yield* store.atomicWrite([
            { key: `${prefix}a`, condition: Condition.revision(a.revision), action: Action.put(bytes("a2")) },
            { key: `${prefix}b`, condition: Condition.notExists, action: Action.put(bytes("b1")) },
            { key: `${prefix}c`, condition: Condition.exists, action: Action.delete },
            { key: `${prefix}d`, condition: Condition.notExists, action: Action.nop }
          ])
          expect(yield* store.get(`${prefix}a`)).toMatchObject({ value: bytes("a2"), revision })
          expect(yield* store.get(`${prefix}b`)).toMatchObject({ value: bytes("b1"), revision })
          expect(yield* Effect.flip(store.get(`${prefix}c`))).toEqual(new NotFound({ key: `${prefix}c` }))

          const before = yield* s.snapshot()
          const failed = yield* Effect.flip(store.atomicWrite([
            { key: `${prefix}a`, condition: Condition.whatever, action: Action.put(bytes("a3")) },
            { key: `${prefix}b`, condition: Condition.revision(a.revision), action: Action.delete }
          ]))
          expect(failed).toEqual(new ConditionFailed({ key: `${prefix}b`, condition: `Revision(${a.revision})` }))
          expect(yield* s.snapshot()).toBe(before)
          // the actors see the atomic write: a conditional update with its revision succeeds
          const next = yield* store.conditionalUpdate({ key: `${prefix}a`, value: bytes("a4"), revision })
          expect(next.revision).not.toBe(revision)
        }))
    })
  })
