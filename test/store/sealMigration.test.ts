/**
 * Sealing a prefix that already holds keys in clear, while the store serves (see `SealMigration`, `Relocation`):
 * stores opened with the prefix sealed read clear keys until they move and move a key before writing it; the
 * migration moves every key keeping its seqs and revisions; writers racing it from two store instances lose nothing;
 * a watch sees only the writers' own changes; and afterwards no item of the table holds a clear key.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import { DataKeys, scopeByDepth } from "../../src/infra/crypto/DataKeys.ts"
import { partitionOf } from "../../src/infra/crypto/DataKeyStore.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import * as Audit from "../../src/programs/ops/Audit.ts"
import * as SealedFallback from "../../src/programs/store/SealedFallback.ts"
import * as SealMigration from "../../src/programs/store/SealMigration.ts"
import type { SealProgress } from "../../src/programs/store/SealMigration.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import type { WatchEvent } from "../../src/programs/store/Watch.ts"
import { rawPartition } from "../support/RawTable.ts"
import { eventTableLayer, openCompaction, openStore, tablePerFile, testLayoutLease } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"
import { itemsHolding } from "./contract/harness.ts"

const { client, freshLocation } = tablePerFile("sealmigrate")
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (value: string) => encoder.encode(value)
const text = (value: Uint8Array) => decoder.decode(value)
const sealed: ReadonlyArray<SealedPrefix> = [{ prefix: "/tokens/", seal: "rest" }]
const keyOf = (index: number) => `/tokens/tok-${index}-secret`

/** The migration on its own event table, data keys and client, as another process would run it. */
const migrate = (
  location: TestTable,
  onProgress: (progress: SealProgress) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const context = yield* Layer.build(eventTableLayer(location, { client }))
      return yield* SealMigration.run(sealed, { onProgress, concurrency: 4, lease: testLayoutLease }).pipe(
        Effect.provide(context)
      )
    })
  )

/** Every item of the table that holds the bytes of one of `secrets` anywhere (keys, attributes, binaries). */
const clearItems = (location: TestTable, secrets: ReadonlyArray<string>) =>
  itemsHolding(client, location.table, secrets)

/** Increments a counter by compare-and-swap until it wins, noting the revision it wrote; the value it wrote. */
const increment = (store: Store["Service"], key: string, written: Set<string>): Effect.Effect<number> =>
  Effect.gen(function*() {
    while (true) {
      const current = yield* store.get(key)
      const next = Number(text(current.value)) + 1
      const swapped = yield* Effect.result(store.compareAndSwap(current, { key, value: bytes(String(next)) }))
      if (swapped._tag === "Success") {
        written.add(swapped.success.revision)
        return next
      }
      if (swapped.failure._tag !== "CompareFailed") return yield* Effect.die(swapped.failure)
    }
  }).pipe(Effect.orDie)

describe("sealing a prefix in place", () => {
  it.live(
    "moves every key under concurrent writers, keeping revisions, history and watches right",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const clear = yield* openStore(location, { client })
        const count = 30
        const kind = (index: number) => index % 5
        const leases = new Map<string, string>()
        for (let index = 0; index < count; index++) {
          const key = keyOf(index)
          const lease = yield* clear.put({ key, value: bytes(kind(index) === 4 ? "0" : `v1-${index}`) })
          leases.set(key, lease.revision)
          if (kind(index) === 1) {
            yield* clear.put({ key, value: bytes(`v2-${index}`) })
            leases.set(key, (yield* clear.put({ key, value: bytes(`v3-${index}`) })).revision)
          }
          if (kind(index) === 2) yield* clear.delete(key)
          if (kind(index) === 3) yield* clear.put({ key, value: bytes(`short-${index}`), expires: Date.now() + 3000 })
        }
        yield* clear.put({ key: "/other/plain", value: bytes("stays") })
        // Compaction moves superseded events into history and buries tombstones: clear keys in every place.
        const compaction = yield* openCompaction(location, client)
        yield* compaction.all(() => Effect.void, { settleMillis: 0 })
        for (let index = 1; index < count; index += 5) {
          leases.set(keyOf(index), (yield* clear.put({ key: keyOf(index), value: bytes(`v4-${index}`) })).revision)
        }

        // Two stores with the prefix sealed (two processes): they open in migrating mode and serve at once.
        const a = yield* openStore(location, { client, storeOptions: { sealed } })
        const b = yield* openStore(location, { client, storeOptions: { sealed } })
        expect(text((yield* a.get(keyOf(0))).value)).toBe("v1-0")
        const watched: Array<WatchEvent> = []
        const watcher = yield* a.watch({ prefixes: ["/tokens/"] }).pipe(
          Stream.runForEach((event) => Effect.sync(() => void watched.push(event))),
          Effect.forkChild
        )
        while (watched[0]?._tag !== "Init") yield* Effect.sleep("20 millis")

        const written = new Set<string>()
        const counters = Array.from({ length: count }, (_, index) => index).filter((index) => kind(index) === 4)
        const writers = Effect.all([
          // Counters incremented from both stores.
          Effect.forEach(
            counters,
            (index) =>
              Effect.forEach([a, b, a, b, a, b], (store) => increment(store, keyOf(index), written), { discard: true }),
            {
              concurrency: "unbounded",
              discard: true
            }
          ),
          // Puts on half of the single-put keys, deletes of the compacted ones, from the other store.
          Effect.forEach(
            Array.from({ length: count }, (_, index) => index).filter((index) => kind(index) === 0 && index % 10 === 0),
            (index) =>
              Effect.map(
                b.put({ key: keyOf(index), value: bytes(`b-${index}`) }),
                (lease) => {
                  written.add(lease.revision)
                  leases.set(keyOf(index), lease.revision)
                }
              ),
            { concurrency: 4, discard: true }
          ),
          Effect.forEach(
            Array.from({ length: count }, (_, index) => index).filter((index) => kind(index) === 1),
            (index) => a.delete(keyOf(index)),
            { concurrency: 4, discard: true }
          )
        ], { concurrency: "unbounded" })
        const [summary] = yield* Effect.all([migrate(location), writers], { concurrency: "unbounded" })
        expect(summary).toEqual([expect.objectContaining({ prefix: "/tokens/", failed: 0, done: true })])

        // Acknowledged writes: each counter went up six times, the put keys hold their last write.
        for (const index of counters) expect(text((yield* b.get(keyOf(index))).value)).toBe("6")
        for (let index = 0; index < count; index++) {
          const key = keyOf(index)
          const got = yield* Effect.result(a.get(key))
          if (kind(index) === 0) {
            expect(got._tag === "Success" && got.success.revision).toBe(leases.get(key))
            expect(got._tag === "Success" && text(got.success.value)).toBe(
              index % 10 === 0 ? `b-${index}` : "v1-" + index
            )
          } else if (kind(index) === 1 || kind(index) === 2) {
            expect(got._tag === "Failure" && got.failure._tag).toBe("NotFound")
          }
        }
        // A lease taken before the move still works after it.
        const untouched = keyOf(5)
        const updated = yield* a.conditionalUpdate({
          key: untouched,
          value: bytes("after"),
          revision: leases.get(untouched)!
        })
        expect(updated.key).toBe(untouched)
        written.add(updated.revision)

        // History joins both stored keys, densely, under the real key.
        const history = yield* Stream.runCollect(a.history(keyOf(1)))
        expect(history.map((event) => event.seq)).toEqual([1, 2, 3, 4, 5])
        expect(history.map((event) => event.op)).toEqual(["put", "put", "put", "put", "delete"])
        expect(new Set(history.map((event) => event.key))).toEqual(new Set([keyOf(1)]))
        const atThird = yield* a.getAt(keyOf(1), { _tag: "Revision", revision: history[2]!.revision })
        expect(text(atThird.value)).toBe("v3-1")

        // The watch heard the writers' changes only: no Delete of a key that moved, no Put repeated by a move.
        yield* Effect.sleep("1500 millis")
        yield* Fiber.interrupt(watcher)
        const changes = watched.slice(1)
        const deleted = new Set(
          Array.from({ length: count }, (_, index) => keyOf(index)).filter((_, i) => kind(i) === 1)
        )
        for (const event of changes) {
          if (event._tag === "Delete") expect(deleted.has(event.key)).toBe(true)
          if (event._tag === "Put") {
            expect(event.item.key.includes("\u0001")).toBe(false)
            const counter = counters.some((index) => keyOf(index) === event.item.key)
            expect(counter || written.has(event.item.revision)).toBe(true)
          }
        }
        expect(changes.filter((event) => event._tag === "Delete").length).toBe(deleted.size)

        // At rest: nothing of any clear key under the prefix, in the live range, graves, history or chunks.
        const secrets = Array.from({ length: count }, (_, index) => `tok-${index}-secret`)
        expect(yield* clearItems(location, secrets)).toEqual([])
        // And a store opened now is no longer migrating: it reads sealed keys only.
        const later = yield* openStore(location, { client, storeOptions: { sealed } })
        expect(text((yield* later.get(keyOf(5))).value)).toBe("after")
        expect(text((yield* later.get("/other/plain")).value)).toBe("stays")
      }),
    120_000
  )

  it.live("resumes after an interruption, reading every key correctly in between", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const clear = yield* openStore(location, { client })
      const count = 40
      for (let index = 0; index < count; index++) yield* clear.put({ key: keyOf(index), value: bytes(`v-${index}`) })
      // A value stored in chunks: its chunk items name the clear key too, and move with it.
      const large = new Uint8Array(600 * 1024).map((_, index) => index % 251)
      const largeKey = "/tokens/large-value-secret"
      yield* clear.put({ key: largeKey, value: large })
      const store = yield* openStore(location, { client, storeOptions: { sealed } })

      const halfway = yield* Deferred.make<void>()
      const run = yield* migrate(location, (progress) =>
        progress.moved >= 10 ? Deferred.succeed(halfway, undefined).pipe(Effect.asVoid) : Effect.void).pipe(
          Effect.forkChild
        )
      yield* Deferred.await(halfway)
      yield* Fiber.interrupt(run)

      // Half moved, half in clear: every key reads once, in order, under its real key, either way and direction.
      const expected = [
        ...Array.from({ length: count }, (_, index) =>
          keyOf(index)),
        largeKey
      ].sort()
      const ascending = yield* store.getRange("/tokens/", "/tokens0")
      expect(ascending.map((item) => item.key)).toEqual(expected)
      const descending = yield* Stream.runCollect(store.items({ start: "/", end: "/u", descending: true }))
      expect(descending.map((item) => item.key)).toEqual([...expected].reverse())
      const limited = yield* store.getRange("/tokens/", "/tokens0", { limit: 3 })
      expect(limited.map((item) => item.key)).toEqual(expected.slice(0, 3))
      for (let index = 0; index < count; index++) {
        expect(text((yield* store.get(keyOf(index))).value)).toBe(`v-${index}`)
      }

      const [summary] = yield* migrate(location)
      expect(summary).toEqual(expect.objectContaining({ prefix: "/tokens/", failed: 0, done: true }))
      expect(summary!.found).toBeLessThan(count)
      const secrets = [...Array.from({ length: count }, (_, index) => `tok-${index}-secret`), "large-value-secret"]
      expect(yield* clearItems(location, secrets)).toEqual([])
      for (let index = 0; index < count; index++) {
        expect(text((yield* store.get(keyOf(index))).value)).toBe(`v-${index}`)
      }
      expect(Buffer.from((yield* store.get(largeKey)).value).equals(Buffer.from(large))).toBe(true)
      // The audit finds every moved event decrypting under its new binding, densely numbered.
      const report = yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(eventTableLayer(location, { client }))
        return yield* Audit.audit(Context.get(context, EventTable), Context.get(context, DataKeys)).pipe(
          Effect.provide(context)
        )
      }))
      expect(report.findings).toEqual([])
      expect((yield* store.getRange("/tokens/", "/tokens0")).map((item) => item.key)).toEqual(expected)
      // Nothing left: running it again finds nothing and is done.
      expect(yield* migrate(location)).toEqual([{ prefix: "/tokens/", found: 0, moved: 0, failed: 0, done: true }])
    }), 120_000)

  it.live(
    "moves a key shredded before its move as shredded: its clear key is gone, its value stays unreadable",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const users: ReadonlyArray<SealedPrefix> = [{ prefix: "/users/", seal: "segment" }]
        const policy = { dataKeyPolicy: { scopeOf: scopeByDepth(2) } }
        const clear = yield* openStore(location, { client, ...policy })
        for (const user of ["alice-secret", "bob-secret"]) {
          yield* clear.put({ key: `/users/${user}/profile`, value: bytes(`${user} profile`) })
          yield* clear.put({ key: `/users/${user}/profile`, value: bytes(`${user} profile 2`) })
        }
        const store = yield* openStore(location, { client, ...policy, storeOptions: { sealed: users } })
        // Shredded while the prefix migrates: the scope of the key not moved yet is its clear one.
        expect(yield* store.shred("/users/alice-secret")).toBeGreaterThanOrEqual(1)
        expect((yield* Effect.flip(store.get("/users/alice-secret/profile")))._tag).toBe("Shredded")

        const summary = yield* Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(eventTableLayer(location, { client, ...policy }))
          return yield* SealMigration.run(users, { lease: testLayoutLease }).pipe(Effect.provide(context))
        }))
        expect(summary).toEqual([{ prefix: "/users/", found: 2, moved: 2, failed: 0, done: true }])
        const later = yield* openStore(location, { client, ...policy, storeOptions: { sealed: users } })
        expect((yield* Effect.flip(later.get("/users/alice-secret/profile")))._tag).toBe("Shredded")
        expect(text((yield* later.get("/users/bob-secret/profile")).value)).toBe("bob-secret profile 2")
        // No item names either user any more: the data keys of their clear scopes were retired under the sealed ones.
        expect(yield* clearItems(location, ["alice-secret", "bob-secret"])).toEqual([])
        const records = yield* Effect.promise(() =>
          rawPartition(client, location.table, partitionOf(location.namespace))
        )
        const scopes = records.map((item) => item["scope"]?.S ?? "")
        // Alice's and Bob's clear scopes, retired, and Bob's sealed one his moved events are encrypted under.
        expect(scopes.filter((scope) => scope.startsWith("/users/\u0001"))).toHaveLength(3)
        expect(scopes.filter((scope) => scope.startsWith("/users/") && !scope.startsWith("/users/\u0001"))).toEqual([])
        expect(text((yield* later.get("/users/bob-secret/profile")).value)).toBe("bob-secret profile 2")
        expect((yield* Effect.flip(later.get("/users/alice-secret/profile")))._tag).toBe("Shredded")
      }),
    60_000
  )

  it.live(
    "an audit against a checkpoint taken before the migration finds the moved keys, not rollbacks",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const clear = yield* openStore(location, { client })
        for (let index = 0; index < 4; index++) yield* clear.put({ key: keyOf(index), value: bytes(`v-${index}`) })
        const directory = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-seal-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(directory, { recursive: true, force: true })))
        const checkpoint = path.join(directory, "checkpoint.json")
        const audit = (options: Audit.AuditOptions) =>
          Effect.scoped(Effect.gen(function*() {
            const context = yield* Layer.build(
              SealedFallback.MovedKeys.layer(sealed).pipe(Layer.provideMerge(eventTableLayer(location, { client })))
            )
            const moved = Context.get(context, SealedFallback.MovedKeys)
            return yield* Audit.audit(Context.get(context, EventTable), Context.get(context, DataKeys), {
              ...options,
              movedAway: moved.movedAway
            }).pipe(Effect.provide(context))
          }))
        expect((yield* audit({ checkpointOut: checkpoint })).ok).toBe(true)
        yield* migrate(location)
        const report = yield* audit({ checkpoint })
        expect(report.findings).toEqual([])
        expect(report.ok).toBe(true)
      }),
    60_000
  )
})
