/**
 * TTL semantics as properties, under a TestClock that drives expiry, on two
 * store instances per run (separate actor systems, as two processes):
 * - an expired item is absent for every operation (and create succeeds on it);
 * - keepAlive extends only live items, keeping their revision;
 * - every expiry is recorded by exactly one raw `expire` event, however many
 *   operations and instances meet it, concurrently or not;
 * - no operation ever brings back a value that expired, was deleted or was
 *   overwritten (see resurrection.ts).
 */
import { Stream } from "effect"
import type { Effect } from "effect"
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import { budget, makeEnvironment } from "../model/harness.ts"
import type { Run, StoreService } from "../model/harness.ts"
import { resurrectionProperty } from "./resurrection.ts"

const environment = makeEnvironment("property-ttl")
afterAll(() => environment.dispose())

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (value: Uint8Array) => new TextDecoder().decode(value)
const key = "/ttl/k"

/** Runs a property body on a fresh run, closing it afterwards. */
const withRun = async (body: (run: Run) => Promise<void>) => {
  const run = await environment.openRun()
  try {
    await body(run)
  } finally {
    await run.close()
  }
}

/** The tag of a failure, or "Success". */
const tagOf = async <A, E>(run: Run, effect: Effect.Effect<A, E>): Promise<string> => {
  const result = await run.exec(effect)
  return result._tag === "Success" ? "Success" : String((result.failure as { _tag: string })._tag)
}

/** An operation on an expired item (of key `lease.key`, alone under `prefix`), what it must answer, and whether it writes anew. */
interface AbsentCase {
  readonly name: string
  readonly run: (
    store: StoreService,
    lease: { key: string; revision: string },
    prefix: string
  ) => Effect.Effect<unknown, unknown>
  /** The failure tag, or what the success must equal. */
  readonly expect: { readonly tag: string } | { readonly value: unknown }
  readonly writes?: boolean
}

const collect = <A, E>(stream: Stream.Stream<A, E>) => Stream.runCollect(stream)
const end = (prefix: string) => `${prefix}\u{10FFFF}`
const absentCases: ReadonlyArray<AbsentCase> = [
  { name: "get", run: (s, l) => s.get(l.key), expect: { tag: "NotFound" } },
  { name: "getRange", run: (s, l) => s.getRange(l.key, l.key), expect: { value: [] } },
  { name: "items asc", run: (s, _, p) => collect(s.items({ start: p, end: end(p) })), expect: { value: [] } },
  {
    name: "items desc",
    run: (s, _, p) => collect(s.items({ start: p, end: end(p), descending: true, limit: 1 })),
    expect: { value: [] }
  },
  { name: "update", run: (s, l) => s.update({ key: l.key, value: bytes("u") }), expect: { tag: "NotFound" } },
  { name: "delete", run: (s, l) => s.delete(l.key), expect: { tag: "NotFound" } },
  { name: "deleteRange", run: (s, _, p) => s.deleteRange(p, end(p)), expect: { value: 0 } },
  {
    name: "compareAndSwap",
    run: (s, l) => s.compareAndSwap({ key: l.key, value: bytes("v") }, { key: l.key, value: bytes("c") }),
    expect: { tag: "CompareFailed" }
  },
  {
    name: "conditionalUpdate",
    run: (s, l) => s.conditionalUpdate({ key: l.key, value: bytes("c"), revision: l.revision }),
    expect: { tag: "IncorrectRevision" }
  },
  {
    name: "conditionalDelete",
    run: (s, l) => s.conditionalDelete(l.key, l.revision),
    expect: { tag: "IncorrectRevision" }
  },
  { name: "keepAlive(lease)", run: (s, l) => s.keepAlive(l, undefined), expect: { tag: "NotFound" } },
  {
    name: "keepAlive(empty)",
    run: (s, l) => s.keepAlive({ key: l.key, revision: "" }, undefined),
    expect: { tag: "NotFound" }
  },
  {
    name: "atomicWrite Exists",
    run: (s, l) => s.atomicWrite([{ key: l.key, condition: Condition.exists, action: Action.put(bytes("a")) }]),
    expect: { tag: "ConditionFailed" }
  },
  {
    name: "atomicWrite Revision",
    run: (s, l) => s.atomicWrite([{ key: l.key, condition: Condition.revision(l.revision), action: Action.delete }]),
    expect: { tag: "ConditionFailed" }
  },
  {
    name: "atomicWrite NotExists",
    run: (s, l) => s.atomicWrite([{ key: l.key, condition: Condition.notExists, action: Action.put(bytes("new")) }]),
    expect: { tag: "Success" },
    writes: true
  },
  {
    name: "create",
    run: (s, l) => s.create({ key: l.key, value: bytes("new") }),
    expect: { tag: "Success" },
    writes: true
  },
  { name: "put", run: (s, l) => s.put({ key: l.key, value: bytes("new") }), expect: { tag: "Success" }, writes: true }
]

const via = fc.constantFrom(0, 1)

describe("TTL properties", () => {
  it("an expired item is absent for every operation, from either instance, cached or not", async () => {
    const setting = fc.record({
      ttl: fc.integer({ min: 1, max: 50 }),
      writer: via,
      observer: via,
      primed: fc.boolean()
    })
    const settings = fc.array(setting, { minLength: absentCases.length, maxLength: absentCases.length })
    const property = fc.asyncProperty(settings, fc.nat({ max: 30 }), (chosen, overshoot) =>
      withRun(async (run) => {
        // every operation, each on its own key under its own prefix, all expired by one clock move
        const now = await run.now()
        const leases = []
        for (const [i, { ttl, writer }] of chosen.entries()) {
          const lease = await run.exec(
            run.stores[writer]!.put({ key: `/ttl/${i}/k`, value: bytes("v"), expires: now + ttl })
          )
          if (lease._tag === "Failure") throw new Error(`put failed: ${String(lease.failure)}`)
          leases.push(lease.success)
        }
        for (const [i, { observer, primed }] of chosen.entries()) {
          if (primed) {
            expect(await tagOf(run, run.stores[observer]!.get(leases[i]!.key)), "live before its expiry").toBe(
              "Success"
            )
          }
        }
        await run.advance(Math.max(...chosen.map((c) => c.ttl)) + overshoot)
        for (const [i, c] of absentCases.entries()) {
          const lease = leases[i]!
          const result = await run.exec(c.run(run.stores[chosen[i]!.observer]!, lease, `/ttl/${i}/`))
          if ("tag" in c.expect) {
            expect(result._tag === "Success" ? "Success" : (result.failure as { _tag: string })._tag, c.name).toBe(
              c.expect.tag
            )
          } else {
            expect(result._tag === "Success" ? result.success : result, c.name).toEqual(c.expect.value)
          }
          // the old value is gone for both instances; a write left its own new value
          for (const store of run.stores) {
            const got = await run.exec(store.get(lease.key))
            if (c.writes) {
              expect(
                got._tag === "Success" ? [text(got.success.value), got.success.revision !== lease.revision] : got,
                c.name
              ).toEqual(["new", true])
            } else {
              expect(got._tag === "Failure" ? got.failure._tag : "Success", `${c.name}: get afterwards`).toBe(
                "NotFound"
              )
            }
          }
          expect(await run.expireCount(lease.key), `${c.name}: one expire event`).toBe(1)
        }
      }))
    await fc.assert(property, budget(8, 4000).parameters)
  }, budget(8, 4000).timeout)

  it("create succeeds on an expired key, and only then, cycle after cycle", async () => {
    const cycle = fc.record({
      ttl: fc.integer({ min: 1, max: 40 }),
      early: fc.nat({ max: 39 }),
      overshoot: fc.nat({ max: 20 }),
      by: via,
      other: via,
      probe: fc.boolean()
    })
    const property = fc.asyncProperty(
      fc.array(cycle, { minLength: 1, maxLength: 4 }),
      (cycles) =>
        withRun(async (run) => {
          for (const [i, { ttl, early, overshoot, by, other, probe }] of cycles.entries()) {
            const now = await run.now()
            const created = await run.exec(run.stores[by].create({ key, value: bytes(`c${i}`), expires: now + ttl }))
            expect(created._tag, `cycle ${i}: create on an absent or expired key`).toBe("Success")
            await run.advance(Math.min(early, ttl - 1))
            expect(
              await tagOf(run, run.stores[other].create({ key, value: bytes("dup") })),
              `cycle ${i}: create on a live key`
            ).toBe("AlreadyExists")
            const got = await run.exec(run.stores[other].get(key))
            expect(got._tag === "Success" ? text(got.success.value) : got, `cycle ${i}: still live`).toBe(`c${i}`)
            await run.advance(ttl - Math.min(early, ttl - 1) + overshoot)
            // the next create may be the first to meet the expiry, or a read may have recorded it already
            if (probe) expect(await tagOf(run, run.stores[other].get(key)), `cycle ${i}: expired`).toBe("NotFound")
          }
          for (const store of run.stores) {
            expect(await tagOf(run, store.get(key)), "expired at the end").toBe("NotFound")
          }
          expect(await run.expireCount(key), "one expire event per cycle").toBe(cycles.length)
        })
    )
    await fc.assert(property, budget(15, 2000).parameters)
  }, budget(15, 2000).timeout)

  it("keepAlive extends only live items and keeps their revision", async () => {
    const property = fc.asyncProperty(
      fc.record({
        ttl: fc.integer({ min: 1, max: 50 }),
        wait: fc.nat({ max: 80 }),
        extension: fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined, freq: 4 }),
        emptyLease: fc.boolean(),
        writer: via,
        keeper: via
      }),
      ({ ttl, wait, extension, emptyLease, writer, keeper }) =>
        withRun(async (run) => {
          const start = await run.now()
          const written = await run.exec(run.stores[writer].put({ key, value: bytes("v"), expires: start + ttl }))
          if (written._tag === "Failure") throw new Error(`put failed: ${String(written.failure)}`)
          const lease = written.success
          await run.advance(wait)
          const now = await run.now()
          const expires = extension === undefined ? undefined : now + extension
          const kept = await run.exec(run.stores[keeper].keepAlive(emptyLease ? { key, revision: "" } : lease, expires))
          if (wait >= ttl) {
            expect(kept._tag === "Failure" ? kept.failure._tag : "Success", "keepAlive on an expired item").toBe(
              "NotFound"
            )
            expect(await tagOf(run, run.stores[writer].get(key)), "still absent").toBe("NotFound")
            return
          }
          expect(kept._tag === "Success" ? kept.success : kept, "keepAlive on a live item keeps its revision").toEqual(
            lease
          )
          for (const store of run.stores) {
            const got = await run.exec(store.get(key))
            expect(got._tag === "Success" ? [text(got.success.value), got.success.revision, got.success.expires] : got)
              .toEqual(["v", lease.revision, expires])
          }
          if (extension === undefined) return
          await run.advance(extension - 1)
          expect(await tagOf(run, run.stores[writer].get(key)), "live 1 ms before the new expiry").toBe("Success")
          await run.advance(1)
          expect(await tagOf(run, run.stores[keeper].keepAlive(lease, now + 1000)), "not extended once expired").toBe(
            "NotFound"
          )
          expect(await tagOf(run, run.stores[writer].get(key)), "absent at the new expiry").toBe("NotFound")
        })
    )
    await fc.assert(property, budget(30, 1000).parameters)
  }, budget(30, 1000).timeout)

  it("every expiry gets exactly one expire event, whoever meets it, concurrently or not", async () => {
    type Observe = (store: StoreService) => Effect.Effect<unknown, unknown>
    const observers: ReadonlyArray<readonly [string, Observe]> = [
      ["get", (s) => s.get(key)],
      ["getRange", (s) => s.getRange("/ttl/", "/ttl0")],
      ["items", (s) => collect(s.items({ start: key, end: key, descending: true }))],
      ["delete", (s) => s.delete(key)],
      ["update", (s) => s.update({ key, value: bytes("u") })],
      ["keepAlive", (s) => s.keepAlive({ key, revision: "" }, undefined)],
      ["compareAndSwap", (s) => s.compareAndSwap({ key, value: bytes("v") }, { key, value: bytes("c") })],
      ["conditionalDelete", (s) => s.conditionalDelete(key, "r")],
      ["deleteRange", (s) => s.deleteRange(key, key)],
      ["atomicWrite Exists", (s) => s.atomicWrite([{ key, condition: Condition.exists, action: Action.delete }])]
    ]
    const cycle = fc.record({
      ttl: fc.integer({ min: 1, max: 30 }),
      overshoot: fc.nat({ max: 20 }),
      writer: via,
      seen: fc.array(fc.tuple(fc.nat({ max: observers.length - 1 }), via), { minLength: 0, maxLength: 6 }),
      concurrent: fc.boolean()
    })
    const property = fc.asyncProperty(
      fc.array(cycle, { minLength: 1, maxLength: 3 }),
      (cycles) =>
        withRun(async (run) => {
          for (const [i, { ttl, overshoot, writer, seen, concurrent }] of cycles.entries()) {
            const now = await run.now()
            // a put meets the previous expiry too, if nobody has recorded it yet
            expect(
              await tagOf(run, run.stores[writer].put({ key, value: bytes("v"), expires: now + ttl })),
              `cycle ${i}: put`
            ).toBe("Success")
            expect(await run.expireCount(key), `cycle ${i}: the previous expiries are each recorded once`).toBe(i)
            await run.advance(ttl + overshoot)
            const observe = seen.map(([which, by]) => () => run.exec(observers[which]![1](run.stores[by])))
            if (concurrent) await Promise.all(observe.map((start) => start()))
            else for (const start of observe) await start()
            expect(await run.expireCount(key), `cycle ${i}: at most one expire event so far`).toBeLessThanOrEqual(i + 1)
          }
          for (const store of run.stores) expect(await tagOf(run, store.get(key)), "absent at the end").toBe("NotFound")
          expect(await run.expireCount(key), "exactly one expire event per expiry").toBe(cycles.length)
        })
    )
    await fc.assert(property, budget(20, 2000).parameters)
  }, budget(20, 2000).timeout)

  it("no operation ever brings back a value that expired, was deleted or was overwritten", async () => {
    await fc.assert(resurrectionProperty(environment), budget(15, 3000).parameters)
  }, budget(15, 3000).timeout)
})
