/**
 * Atomic multi-key writes against DynamoDB Local: many at once, the entry
 * limit, every condition with every action, all-or-nothing on a failed
 * condition, and races of conflicting transactions.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import type { ConditionalAction } from "../../../src/domain/AtomicWrite.ts"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import { bytes, failedWith, outcomeTag, rawEvents, rawEventsOf, text } from "./helpers.ts"

const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin))
const table = Effect.promise(() => tableOnce)

const keysUnder = (prefix: string) =>
  Effect.flatMap(
    table,
    (location) =>
      Effect.map(rawEvents(admin, location), (events) => events.filter((event) => event.key.startsWith(prefix)))
  )

describe("atomicWrite", () => {
  it.live("60 concurrent non-conflicting atomic writes (2-3 keys each, 2 instances) all succeed on the first call", () =>
    Effect.gen(function*() {
      const location = yield* table
      const stores = [yield* openStore(location), yield* openStore(location)]
      const writes = Array.from(
        { length: 60 },
        (_, w) =>
          Array.from({ length: 2 + (w % 2) }, (_, k): ConditionalAction => ({
            key: `/many/${w}/${k}`,
            condition: k === 0 ? Condition.notExists : Condition.whatever,
            action: Action.put(bytes(`${w}.${k}`))
          }))
      )
      const exits = yield* Effect.all(
        writes.map((actions, w) => Effect.exit(stores[w % 2]!.atomicWrite(actions))),
        { concurrency: "unbounded" }
      )
      expect(exits.map((exit) => outcomeTag(exit))).toEqual(writes.map(() => "Success"))
      const revisions = exits.map((exit) => Exit.isSuccess(exit) ? exit.value : "")
      expect(new Set(revisions).size).toBe(60)

      const events = yield* keysUnder("/many/")
      expect(events.length).toBe(writes.flat().length)
      for (const [w, actions] of writes.entries()) {
        for (const entry of actions) {
          const item = yield* stores[(w + 1) % 2]!.get(entry.key)
          expect(text(item.value)).toBe(entry.key.slice("/many/".length).replace("/", "."))
          expect(item.revision).toBe(revisions[w])
          expect(events.filter((event) => event.key === entry.key).map((event) => [event.seq, event.revision]))
            .toEqual([[1, revisions[w]]])
        }
      }
    }).pipe(Effect.scoped))

  it.live("65 entries fail with BadParameter and write nothing; 64 entries succeed with one shared revision", () =>
    Effect.gen(function*() {
      const location = yield* table
      const store = yield* openStore(location)
      const entries = (prefix: string, n: number) =>
        Array.from({ length: n }, (_, i): ConditionalAction => ({
          key: `${prefix}/${String(i).padStart(2, "0")}`,
          condition: i % 2 === 0 ? Condition.notExists : Condition.whatever,
          action: Action.put(bytes(`v${i}`))
        }))

      const tooMany = yield* Effect.exit(store.atomicWrite(entries("/limit/65", 65)))
      expect(failedWith(tooMany, "BadParameter")).toBe(true)
      expect(yield* keysUnder("/limit/65")).toEqual([])

      const revision = yield* store.atomicWrite(entries("/limit/64", 64))
      const events = yield* keysUnder("/limit/64")
      expect(events.length).toBe(64)
      expect(events.every((event) => event.revision === revision && event.seq === 1 && event.op === "put")).toBe(true)
      const items = yield* store.getRange("/limit/64/", "/limit/64/~")
      expect(items.length).toBe(64)
      expect(items.every((item) => item.revision === revision)).toBe(true)
      expect(items.map((item) => text(item.value))).toEqual(Array.from({ length: 64 }, (_, i) => `v${i}`))

      // 64 entries on existing keys: Deletes and Nops only check, Puts append; still one revision.
      const second = yield* store.atomicWrite(
        Array.from({ length: 64 }, (_, i): ConditionalAction => ({
          key: `/limit/64/${String(i).padStart(2, "0")}`,
          condition: Condition.revision(revision),
          action: i % 3 === 0 ? Action.put(bytes(`w${i}`)) : i % 3 === 1 ? Action.delete : Action.nop
        }))
      )
      const after = yield* keysUnder("/limit/64")
      expect(after.filter((event) => event.seq === 2).every((event) => event.revision === second)).toBe(true)
      expect(after.length).toBe(64 + 22 + 21)
      expect((yield* store.getRange("/limit/64/", "/limit/64/~")).length).toBe(22 + 21)
    }).pipe(Effect.scoped))

  it.live("every condition with every action, on a live, a deleted and a never-written key", () =>
    Effect.gen(function*() {
      const location = yield* table
      const store = yield* openStore(location)
      const other = yield* openStore(location)
      const conditions = ["Whatever", "Exists", "NotExists", "Revision(current)", "Revision(stale)"] as const
      const actions = ["Put", "Delete", "Nop"] as const
      const cases = (["live", "deleted", "absent"] as const).flatMap((state) =>
        conditions.flatMap((condition) => actions.map((action) => ({ state, condition, action })))
      )

      yield* Effect.forEach(cases, ({ state, condition, action }, index) =>
        Effect.gen(function*() {
          const target = `/matrix/${index}/target`
          const scratch = `/matrix/${index}/scratch`
          // For a never-written key the revisions come from another key: a live revision elsewhere must not match.
          const source = state === "absent" ? `/matrix/${index}/elsewhere` : target
          const stale = (yield* store.put({ key: source, value: bytes("stale") })).revision
          const current = (yield* store.put({ key: source, value: bytes("current") })).revision
          if (state === "deleted") yield* store.delete(target)
          const before = (yield* rawEventsOf(admin, location, target)).length
          const live = state === "live"
          const holds = condition === "Whatever" || (condition === "Exists" && live) ||
            (condition === "NotExists" && !live) || (condition === "Revision(current)" && live)
          const label = `${state} ${condition} ${action}`

          // The scratch Put makes Nop-only writes valid and shows all-or-nothing.
          const exit = yield* Effect.exit(other.atomicWrite([
            {
              key: target,
              condition: condition === "Whatever" ? Condition.whatever : condition === "Exists" ?
                Condition.exists
                : condition === "NotExists" ?
                Condition.notExists
                : Condition.revision(condition === "Revision(current)" ? current : stale),
              action: action === "Put" ? Action.put(bytes("new")) : action === "Delete" ? Action.delete : Action.nop
            },
            { key: scratch, condition: Condition.whatever, action: Action.put(bytes("scratch")) }
          ]))
          const events = yield* rawEventsOf(admin, location, target)
          const scratchEvents = yield* rawEventsOf(admin, location, scratch)
          if (!holds) {
            expect(failedWith(exit, "ConditionFailed"), label).toBe(true)
            expect(String(Exit.isFailure(exit) ? exit.cause.reasons[0] : ""), label).toContain(target)
            expect(events.length, label).toBe(before)
            expect(scratchEvents.length, label).toBe(0)
            return
          }
          expect(outcomeTag(exit), label).toBe("Success")
          const revision = Exit.isSuccess(exit) ? exit.value : ""
          expect(scratchEvents.map((event) => event.revision), label).toEqual([revision])
          const appended = action === "Put" || (action === "Delete" && live) ? 1 : 0
          expect(events.length, label).toBe(before + appended)
          if (appended) expect(events.at(-1)!.revision, label).toBe(revision)
          // Both instances read the result (the writer's actors were invalidated, the other's re-read).
          for (const reader of [store, other]) {
            const got = yield* Effect.exit(reader.get(target))
            if (action === "Put") expect(Exit.isSuccess(got) && text(got.value.value), label).toBe("new")
            else if (action === "Delete" || !live) expect(outcomeTag(got), label).toBe("NotFound")
            else expect(Exit.isSuccess(got) && got.value.revision, label).toBe(current)
          }
        }), { concurrency: 8, discard: true })
    }).pipe(Effect.scoped))

  it.live("a failing condition on one key fails the whole write with ConditionFailed; no key changes", () =>
    Effect.gen(function*() {
      const location = yield* table
      const store = yield* openStore(location)
      const a = yield* store.put({ key: "/all-or-nothing/a", value: bytes("a") })
      yield* store.put({ key: "/all-or-nothing/b", value: bytes("b") })
      const before = yield* keysUnder("/all-or-nothing/")
      for (const failing of [Condition.notExists, Condition.revision("0190aaaa-0000-7000-8000-000000000000")]) {
        const exit = yield* Effect.exit(store.atomicWrite([
          { key: "/all-or-nothing/a", condition: Condition.revision(a.revision), action: Action.put(bytes("a2")) },
          { key: "/all-or-nothing/c", condition: Condition.notExists, action: Action.put(bytes("c")) },
          { key: "/all-or-nothing/b", condition: failing, action: Action.delete }
        ]))
        expect(failedWith(exit, "ConditionFailed")).toBe(true)
        expect(String(Exit.isFailure(exit) ? exit.cause.reasons[0] : "")).toContain("/all-or-nothing/b")
        expect(yield* keysUnder("/all-or-nothing/")).toEqual(before)
      }
      expect(text((yield* store.get("/all-or-nothing/a")).value)).toBe("a")
      expect(outcomeTag(yield* Effect.exit(store.get("/all-or-nothing/c")))).toBe("NotFound")
    }).pipe(Effect.scoped))

  it.live("Delete of an absent key with Whatever succeeds and writes nothing; a Revision condition survives keepAlive", () =>
    Effect.gen(function*() {
      const location = yield* table
      const store = yield* openStore(location)
      const revision = yield* store.atomicWrite([{
        key: "/absent/x",
        condition: Condition.whatever,
        action: Action.delete
      }])
      expect(revision.length).toBeGreaterThan(0)
      expect(yield* keysUnder("/absent/")).toEqual([])
      expect(outcomeTag(yield* Effect.exit(store.get("/absent/x")))).toBe("NotFound")

      const lease = yield* store.put({ key: "/absent/kept", value: bytes("k") })
      const kept = yield* store.keepAlive(lease, Date.now() + 3_600_000)
      expect(kept.revision).toBe(lease.revision)
      yield* store.atomicWrite([{
        key: "/absent/kept",
        condition: Condition.revision(lease.revision),
        action: Action.put(bytes("k2"))
      }])
      expect((yield* rawEventsOf(admin, location, "/absent/kept")).map((event) => event.op)).toEqual([
        "put",
        "keep-alive",
        "put"
      ])
    }).pipe(Effect.scoped))

  it.live("an expired item: NotExists holds, the expiry is recorded exactly once, then the Put lands", () =>
    Effect.gen(function*() {
      const location = yield* table
      const [a, b] = [yield* openStore(location), yield* openStore(location)]
      yield* a.put({ key: "/expired/k", value: bytes("short"), expires: Date.now() + 300 })
      yield* Effect.sleep("600 millis")
      const exits = yield* Effect.all([
        Effect.exit(
          a.atomicWrite([{ key: "/expired/k", condition: Condition.notExists, action: Action.put(bytes("a")) }])
        ),
        Effect.exit(
          b.atomicWrite([{ key: "/expired/k", condition: Condition.notExists, action: Action.put(bytes("b")) }])
        )
      ], { concurrency: "unbounded" })
      const tags = exits.map((exit) => outcomeTag(exit)).sort()
      expect(tags).toEqual(["ConditionFailed", "Success"])
      expect((yield* rawEventsOf(admin, location, "/expired/k")).map((event) => event.op)).toEqual([
        "put",
        "expire",
        "put"
      ])
    }).pipe(Effect.scoped))

  it.live("conflicting atomic writes on a shared key: exactly one NotExists write wins per round", () =>
    Effect.gen(function*() {
      const location = yield* table
      const stores = [yield* openStore(location), yield* openStore(location), yield* openStore(location)]
      for (let round = 0; round < 5; round++) {
        const shared = `/conflict/${round}/shared`
        const exits = yield* Effect.all(
          Array.from({ length: 6 }, (_, n) =>
            Effect.exit(stores[n % 3]!.atomicWrite([
              { key: shared, condition: Condition.notExists, action: Action.put(bytes(`w${n}`)) },
              { key: `/conflict/${round}/own/${n}`, condition: Condition.whatever, action: Action.put(bytes(`w${n}`)) }
            ]))),
          { concurrency: "unbounded" }
        )
        const winners = exits.flatMap((exit, n) => Exit.isSuccess(exit) ? [n] : [])
        expect(winners.length).toBe(1)
        expect(exits.filter((exit) => failedWith(exit, "ConditionFailed")).length).toBe(5)
        const events = yield* keysUnder(`/conflict/${round}/`)
        expect(events.map((event) => event.key).sort()).toEqual([`/conflict/${round}/own/${winners[0]}`, shared])
        expect(text((yield* stores[0]!.get(shared)).value)).toBe(`w${winners[0]}`)
      }
    }).pipe(Effect.scoped))
})
