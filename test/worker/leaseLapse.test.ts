/**
 * Leases fence checkpoints, not side effects: a worker whose lease lapses in the middle of a long batch goes on
 * applying that batch beside the shard's new owner, which reads the same events again from the checkpoint and
 * then newer ones. End to end, with two workers on one table: worker A is held inside a batch while its lease
 * renewals stall, B takes the shard over and applies newer writes, then A finishes its now stale batch. The
 * built-in projections (history compaction, expiry) and an `IndexView` kept by both must end as a fold of the
 * event log: no regressed or ghost index entry, no second `expire` event, no checkpoint of A's stale reading.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Layer } from "effect"
import type { Event } from "../../src/domain/Event.ts"
import * as IndexView from "../../src/programs/views/IndexView.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import { eventTableLayer, makeClient, openStore } from "../support/TestStore.ts"
import type { Env } from "./support.ts"
import { allEvents, bytes, eventually, freshEnv, openLease, startWorker, text } from "./support.ts"

const prefix = "/v/"
const keys = [0, 1, 2, 3].map((i) => `${prefix}k${i}`)
const block = `${prefix}block`
const leaseMillis = 1500
const resyncMillis = 300

/** The index of a value: its first letter, so each round of writes moves every key to another entry. */
const indexOf = (value: string) => value.slice(0, 1)

/** An `IndexView` of the test's keys on the shared view table, through a client of its own (as a process has). */
const indexView = (env: Env) =>
  Effect.gen(function*() {
    const client = makeClient()
    yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
    const services = yield* Layer.build(eventTableLayer(env.location, { client }))
    return yield* IndexView.make({ name: "by-letter", prefix, indexOf: (item) => indexOf(text(item.value)) }).pipe(
      Effect.provide(services)
    )
  })

describe("a lease lapsing in the middle of a batch", () => {
  it.live(
    "the stale batch of the old owner leaves the built-in projections and views as a fold of the log",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("lease-lapse")
        const group = "lease-lapse"
        const store = yield* openStore(env.location, { client: env.client })
        const entered = yield* Deferred.make<void>()
        const proceed = yield* Deferred.make<void>()
        // What A applied once it was let go: the events of its stale batch, each held until then (A applies the
        // keys of a batch concurrently, so every event of round "b" is held, not only the first).
        const lateByA: Array<Event> = []
        const gate = Projection.make({
          name: "gate",
          prefixes: [prefix],
          apply: (event: Event) =>
            Effect.gen(function*() {
              const held = event.key === block || text(event.value ?? new Uint8Array()).startsWith("b-")
              if (!held || (yield* Deferred.isDone(proceed))) return
              if (event.key === block) yield* Deferred.succeed(entered, undefined)
              yield* Deferred.await(proceed)
              lateByA.push(event)
            })
        })
        let stallRenewals = false
        const viewOfA = yield* indexView(env)
        const a = yield* startWorker(env, {
          group,
          projections: [gate, viewOfA.projection],
          leaseMillis,
          resyncMillis,
          // A's lease writes answer long after its lease ran out, as a process starved of CPU or network would.
          responseDelay: (command, input) =>
            stallRenewals && command === "UpdateItemCommand" &&
              (input as { TableName?: string }).TableName === env.leaseTable
              ? 4 * leaseMillis
              : 0
        })

        // Round "a": every key indexed under "a", seen by A.
        for (const key of keys) yield* store.put({ key, value: bytes(`a-${key}`) })
        yield* eventually(
          "A indexed round a",
          Effect.gen(function*() {
            expect((yield* viewOfA.view.query("a")).map((item) => item.key).sort()).toEqual(keys)
          }),
          20_000
        )

        // One transaction: the blocking key and round "b" (and an expiring key) reach A in one batch, held at its
        // first event.
        yield* store.atomicWrite([
          { key: block, condition: { _tag: "Whatever" }, action: { _tag: "Put", value: bytes("held") } },
          ...keys.map((key) => ({
            key,
            condition: { _tag: "Whatever" as const },
            action: { _tag: "Put" as const, value: bytes(`b-${key}`) }
          }))
        ])
        yield* store.put({ key: `${prefix}ttl`, value: bytes("t-soon"), expires: Date.now() + 1000 })
        yield* Deferred.await(entered).pipe(Effect.timeout("20 seconds"))
        stallRenewals = true

        // B arrives while A is held and its lease lapses; B takes the shard and applies rounds "b" and "c".
        const viewOfB = yield* indexView(env)
        yield* startWorker(env, { group, projections: [viewOfB.projection], leaseMillis, resyncMillis })
        yield* eventually(
          "B holds the shard",
          Effect.gen(function*() {
            const lease = yield* openLease(env, group)
            expect(lease.owner).not.toBe(a.owner)
            expect(lease.owner).not.toBe("")
          }),
          20_000
        )
        for (const key of keys) yield* store.put({ key, value: bytes(`c-${key}`) })
        yield* eventually(
          "B indexed round c",
          Effect.gen(function*() {
            expect((yield* viewOfB.view.query("c")).map((item) => item.key).sort()).toEqual(keys)
          }),
          20_000
        )
        const leaseBeforeRelease = yield* openLease(env, group)

        // A finishes its stale batch: round "b" once more, after B applied round "c".
        yield* Deferred.succeed(proceed, undefined)
        yield* eventually(
          "A applied its stale batch",
          Effect.sync(() => {
            expect(lateByA.filter((event) => keys.includes(event.key)).length).toBe(keys.length)
          }),
          20_000
        )
        // What A applied late was round "b", older than the round "c" B had already applied: the overlap happened.
        expect(lateByA.filter((event) => keys.includes(event.key)).map((event) => text(event.value!)).sort()).toEqual(
          keys.map((key) => `b-${key}`)
        )
        // Give A's other projections (the index, compaction, expiry) the same batch's time to land.
        yield* Effect.sleep(2 * leaseMillis)

        // The index holds round "c" only: nothing regressed to "b", nothing left under "a" or "b".
        expect({
          a: (yield* viewOfB.view.query("a")).map((item) => item.key),
          b: (yield* viewOfB.view.query("b")).map((item) => item.key),
          c: (yield* viewOfB.view.query("c")).map((item) => item.key).sort()
        }).toEqual({ a: [], b: [], c: keys })
        for (const key of keys) expect(text((yield* store.get(key)).value)).toBe(`c-${key}`)
        // A's stale reading checkpointed nothing: the lease is B's, at B's epoch, with B's checkpoint or later.
        const lease = yield* openLease(env, group)
        expect([lease.owner, lease.epoch]).toEqual([leaseBeforeRelease.owner, leaseBeforeRelease.epoch])

        // Exactly one expire event for the expiring key, whoever of A and B recorded it; every key's events have
        // distinct seqs and the newest of each is round "c" (compaction moved, never lost or doubled, events).
        yield* eventually(
          "the expiry is recorded",
          Effect.gen(function*() {
            const events = (yield* allEvents(env)).filter((event) => event.key === `${prefix}ttl`)
            expect(events.map((event) => event.op)).toEqual(["put", "expire"])
          }),
          20_000
        )
        const events = yield* allEvents(env)
        for (const key of keys) {
          const seqs = events.filter((event) => event.key === key).map((event) => event.seq).sort((x, y) => x - y)
          expect(seqs, key).toEqual([1, 2, 3])
        }
      }),
    120_000
  )
})
