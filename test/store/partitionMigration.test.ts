/**
 * Changing a namespace's layout while its stores serve (see `PartitionMigration`, `MigratingTable`), on DynamoDB
 * Local: a prefix of one partition moved into 4 hash buckets under two stores' concurrent writers, a reader and a
 * watch; a run interrupted and resumed; stores with the old layout refused once the change is recorded; a
 * partitioned prefix removed (its keys moved back to the default partition).
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Stream } from "effect"
import * as Key from "../../src/domain/Key.ts"
import type { Layout } from "../../src/domain/Partitioning.ts"
import type { DataKeys } from "../../src/infra/crypto/DataKeys.ts"
import type { Dynamo } from "../../src/infra/Dynamo.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import type { EventTable } from "../../src/infra/EventTable.ts"
import * as LayoutRecord from "../../src/infra/LayoutRecord.ts"
import { keyPartition } from "../../src/infra/PartitionKeys.ts"
import * as PartitionMigration from "../../src/programs/store/PartitionMigration.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import { eventually } from "../streams/Harness.ts"
import { rawKeyItems } from "../support/RawTable.ts"
import {
  eventTableLayer,
  openCompaction,
  openStore,
  openStoreChecked,
  tablePerFile,
  testLayoutLease,
  withLayout
} from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"
import { changes, keyOf, startWatch } from "../support/Watching.ts"

const { client, freshLocation } = tablePerFile("pmig")
const bytes = (value: string) => new TextEncoder().encode(value)
const text = (value: Uint8Array | undefined) => new TextDecoder().decode(value ?? new Uint8Array())
const bucketed: Layout = [{ prefix: "/hot/", name: "hot", buckets: 4 }]

const withTable = <A, E>(
  location: TestTable,
  layout: Layout,
  effect: Effect.Effect<A, E, EventTable | DataKeys | Dynamo>
) => withLayout(location, layout, client, effect)

const migrate = (location: TestTable, layout: Layout) =>
  withTable(location, layout, PartitionMigration.run({ concurrency: 4, lease: testLayoutLease }))

const recorded = (location: TestTable) =>
  Effect.orDie(LayoutRecord.readState(location).pipe(Effect.provide(eventTableLayer(location, { client }))))

/** Increments by compare-and-swap until it wins; the revision it wrote. */
const increment = (store: Store["Service"], key: string): Effect.Effect<string> =>
  Effect.gen(function*() {
    while (true) {
      const current = yield* store.get(key)
      const swapped = yield* Effect.result(
        store.compareAndSwap(current, { key, value: bytes(String(Number(text(current.value)) + 1)) })
      )
      if (swapped._tag === "Success") return swapped.success.revision
      if (swapped.failure._tag !== "CompareFailed") return yield* Effect.die(swapped.failure)
    }
  }).pipe(Effect.orDie)

const historyOf = (store: Store["Service"], key: string) =>
  Effect.map(
    Stream.runCollect(store.history(key)),
    (events) => events.map((event) => ({ seq: event.seq, revision: event.revision }))
  )

const partitionsOf = (location: TestTable, key: string) =>
  Effect.promise(() => rawKeyItems(client, location, key)).pipe(
    Effect.map((items) => [...new Set(items.map((item) => item[Attr.partition]?.S))])
  )

describe("a layout migration", () => {
  it.live(
    "moves a prefix into 4 buckets under concurrent writers without a lost, reordered or missing event",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const old = yield* openStore(location, { client })
        const counters = Array.from({ length: 6 }, (_, index) => `/hot/counter-${index}`)
        const steady = Array.from({ length: 30 }, (_, index) => `/hot/steady-${String(index).padStart(2, "0")}`)
        const deleted = Array.from({ length: 5 }, (_, index) => `/hot/gone-${index}`)
        const churn = Array.from({ length: 4 }, (_, index) => `/hot/churn-${index}`)
        for (const key of [...counters, ...churn]) yield* old.put({ key, value: bytes("0") })
        for (const key of steady) for (let i = 0; i < 3; i++) yield* old.put({ key, value: bytes(`${key}:${i}`) })
        for (const key of deleted) {
          yield* old.put({ key, value: bytes("x") })
          yield* old.delete(key)
        }
        const now = yield* Clock.currentTimeMillis
        yield* old.put({ key: "/hot/expiring", value: bytes("soon"), expires: now + 1_500 })
        const big = new Uint8Array(600_000).map((_, index) => index % 251)
        yield* old.put({ key: "/hot/big", value: big })
        yield* old.put({ key: "/cold/stays", value: bytes("here") })
        // History copies and graves in the old partition: compaction moves all but each key's newest event.
        const compaction = yield* openCompaction(location, client)
        yield* compaction.all(() => Effect.void, { settleMillis: 0 })
        const before = new Map<string, ReadonlyArray<{ seq: number; revision: string }>>()
        for (const key of [...steady, ...deleted, "/hot/big"]) before.set(key, yield* historyOf(old, key))
        expect(before.get(steady[0]!)!.map((event) => event.seq)).toEqual([1, 2, 3])

        // The change is recorded: from now on a store with the old layout is refused.
        const transition = yield* withTable(location, bucketed, PartitionMigration.begin)
        expect(transition).toEqual({ from: [], to: [{ prefix: "/hot/", name: "hot", buckets: 4 }] })
        const refused = yield* Effect.flip(openStoreChecked(location, { client }))
        expect(refused._tag).toBe("ConfigInvalid")
        expect(refused.message).toContain("only stores with the new layout")

        const options = { client, storeOptions: { partitions: bucketed } }
        const a = yield* openStore({ ...location, partitions: bucketed }, options)
        const b = yield* openStore({ ...location, partitions: bucketed }, options)
        const { watching } = yield* startWatch(b, { prefixes: ["/hot/"] })
        yield* Effect.sleep("300 millis")

        // A reader that must never find a steady key missing, nor a range without it (or with a key twice).
        let reading = true
        const misses: Array<string> = []
        let reads = 0
        const reader = Effect.gen(function*() {
          while (reading) {
            for (const key of steady) {
              const got = yield* Effect.result(a.get(key))
              if (got._tag === "Failure") misses.push(`get ${key}: ${got.failure._tag}`)
              else if (text(got.success.value) !== `${key}:2`) misses.push(`get ${key}: ${text(got.success.value)}`)
            }
            for (const descending of [false, true]) {
              const range = yield* Effect.orDie(
                Stream.runCollect(b.items({ start: "/hot/steady-", end: "/hot/steady-~", descending }))
              )
              const keys = range.map((item) => item.key)
              const expected = descending ? [...steady].reverse() : steady
              if (JSON.stringify(keys) !== JSON.stringify(expected)) misses.push(`range ${descending}: ${keys.length}`)
            }
            reads++
          }
        })
        const acked = new Map<string, Array<string>>(counters.map((key) => [key, []]))
        const perStore = 5
        const writers = Effect.forEach(
          counters.flatMap((key) => [...Array(perStore).fill([a, key]), ...Array(perStore).fill([b, key])]),
          ([store, key]: [Store["Service"], string]) =>
            Effect.map(increment(store, key), (revision) => void acked.get(key)!.push(revision)),
          { concurrency: 12, discard: true }
        )
        // Puts and deletes racing the moves, from both stores: each key's last acknowledged write is what it reads.
        const churner = Effect.forEach(churn, (key, index) =>
          Effect.gen(function*() {
            const store = index % 2 === 0 ? a : b
            for (let round = 1; round <= 4; round++) {
              yield* Effect.orDie(store.put({ key, value: bytes(String(round)) }))
              if (round === 4 && index < 2) yield* Effect.orDie(store.delete(key))
            }
          }), { concurrency: "unbounded", discard: true })
        const readerFiber = yield* Effect.forkChild(reader)
        const [first, second] = yield* Effect.all([
          migrate(location, bucketed),
          migrate(location, bucketed),
          writers,
          churner
        ], {
          concurrency: "unbounded"
        })
        reading = false
        yield* Fiber.join(readerFiber)
        expect(misses).toEqual([])
        expect(reads).toBeGreaterThan(0)
        expect([first!.done, second!.done]).toEqual([true, true])
        expect(first!.failed + second!.failed).toBe(0)
        expect(first!.found + second!.found).toBeGreaterThanOrEqual(steady.length)

        // No acknowledged increment lost, each counter's history dense and in order.
        for (const key of counters) {
          expect(text((yield* a.get(key)).value)).toBe(String(2 * perStore))
          const history = yield* Stream.runCollect(b.history(key))
          expect(history.map((event) => event.seq)).toEqual(Array.from({ length: 1 + 2 * perStore }, (_, i) => i + 1))
          expect(history.map((event) => text(event.value))).toEqual(
            Array.from({ length: 1 + 2 * perStore }, (_, i) => String(i))
          )
          const revisions = new Set(history.map((event) => event.revision))
          for (const revision of acked.get(key)!) expect(revisions.has(revision)).toBe(true)
        }
        for (const [index, key] of churn.entries()) {
          const got = yield* Effect.result(a.get(key))
          if (index < 2) expect(got._tag).toBe("Failure")
          else expect(got._tag === "Success" && text(got.success.value)).toBe("4")
        }
        // Keys nobody wrote kept their histories (seqs and revisions), graves, large value and expiry.
        for (const key of [...steady, ...deleted, "/hot/big"]) expect(yield* historyOf(a, key)).toEqual(before.get(key))
        for (const key of deleted) expect((yield* Effect.flip(a.get(key)))._tag).toBe("NotFound")
        expect((yield* a.get("/hot/big")).value).toEqual(big)
        expect((yield* a.get("/cold/stays")).value).toEqual(bytes("here"))
        yield* Effect.sleep(`${Math.max(0, now + 1_600 - (yield* Clock.currentTimeMillis))} millis`)
        expect((yield* Effect.flip(a.get("/hot/expiring")))._tag).toBe("NotFound")

        // Every moved key lives in its bucket alone; the record settles on the new layout.
        for (const key of [...steady, ...counters, "/hot/big"]) {
          expect(yield* partitionsOf({ ...location, partitions: bucketed }, key)).toEqual([
            keyPartition({ ...location, partitions: bucketed }, key)
          ])
          expect(yield* partitionsOf(location, key)).toEqual([])
        }
        expect(yield* recorded(location)).toEqual({
          layout: [{ prefix: "/hot/", name: "hot", buckets: 4 }],
          to: undefined
        })
        expect((yield* Effect.flip(openStoreChecked(location, { client })))._tag).toBe("ConfigInvalid")

        // The watch heard the writers' changes, in each key's order, and nothing of the moves.
        const total = counters.length * 2 * perStore + churn.length * 4 + 2
        expect(yield* eventually(() => changes(watching.events).length >= total, 20_000)).toBe(true)
        yield* Effect.sleep("500 millis")
        // The courtesy expiry recorded by the last get of the expiring key is a real change.
        const heard = changes(watching.events).filter((event) => keyOf(event) !== "/hot/expiring")
        expect(heard.length).toBe(total)
        const written = new Set([...counters, ...churn])
        expect(heard.filter((event) => !written.has(keyOf(event)))).toEqual([])
        for (const key of written) {
          const seqs = heard.filter((event) => keyOf(event) === key).map((event) => event.seq)
          expect(seqs).toEqual([...seqs].sort((x, y) => x - y))
          expect(new Set(seqs).size).toBe(seqs.length)
        }
        const last = yield* migrate(location, bucketed)
        expect(last).toMatchObject({ found: 0, moved: 0, failed: 0, done: true })
      }),
    480_000
  )

  it.live(
    "resumes an interrupted run, and moves a removed prefix's keys back to the default partition",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const old = yield* openStore(location, { client })
        const keys = Array.from({ length: 24 }, (_, index) => `/hot/k${String(index).padStart(2, "0")}`)
        for (const key of keys) for (let i = 0; i < 2; i++) yield* old.put({ key, value: bytes(`${key}:${i}`) })
        const before = new Map<string, ReadonlyArray<{ seq: number; revision: string }>>()
        for (const key of keys) before.set(key, yield* historyOf(old, key))
        // Stopped after five keys: the record says a migration is under way, the other keys are still in place.
        const reports = yield* withTable(
          location,
          bucketed,
          Stream.runCollect(
            PartitionMigration.migrate({ concurrency: 1, lease: testLayoutLease }).pipe(
              Stream.filter((report) => report.waitMillis === undefined),
              Stream.take(5)
            )
          )
        )
        expect(reports.map((report) => report.moved)).toEqual([1, 2, 3, 4, 5])
        expect((yield* recorded(location))?.to).toEqual(bucketed)
        const serving = yield* openStore({ ...location, partitions: bucketed }, {
          client,
          storeOptions: { partitions: bucketed }
        })
        for (const key of keys) expect(text((yield* serving.get(key)).value)).toBe(`${key}:1`)
        // A key not moved yet answers getAt from its old partition, a moved one from its new one.
        for (const key of [keys[0]!, keys[15]!]) {
          const first = yield* serving.getAt(key, { _tag: "Revision", revision: before.get(key)![0]!.revision })
          expect(text(first.value)).toBe(`${key}:0`)
        }
        expect((yield* Stream.runCollect(serving.items({ start: "/hot/", end: "/hot/~" }))).map((item) => item.key))
          .toEqual([...keys].sort(Key.compare))
        // An atomic write (on a revision) and a deleteRange over keys not moved yet move them first.
        yield* serving.atomicWrite([
          {
            key: keys[10]!,
            condition: { _tag: "Revision", revision: before.get(keys[10]!)![1]!.revision },
            action: { _tag: "Delete" }
          },
          { key: keys[11]!, condition: { _tag: "Exists" }, action: { _tag: "Put", value: bytes("atomic") } }
        ])
        expect(yield* serving.deleteRange(keys[20]!, keys[23]!)).toBe(4)
        expect((yield* Effect.flip(serving.get(keys[10]!)))._tag).toBe("NotFound")
        expect(text((yield* serving.get(keys[11]!)).value)).toBe("atomic")
        const written = new Set([keys[10]!, keys[11]!, keys[20]!, keys[21]!, keys[22]!, keys[23]!])
        const resumed = yield* migrate(location, bucketed)
        expect(resumed).toMatchObject({ found: keys.length - 5 - 6, moved: keys.length - 5 - 6, failed: 0, done: true })
        for (const key of keys) {
          const history = yield* historyOf(serving, key)
          expect(history.slice(0, 2)).toEqual(before.get(key))
          expect(history.length).toBe(written.has(key) ? 3 : 2)
          expect(yield* partitionsOf(location, key)).toEqual([])
        }

        // Removing the partitioned prefix: every key moves back, with its history.
        yield* serving.put({ key: keys[0]!, value: bytes("after") })
        const back = yield* migrate(location, [])
        expect(back).toMatchObject({ found: keys.length, moved: keys.length, failed: 0, done: true })
        expect(yield* recorded(location)).toEqual({ layout: [], to: undefined })
        const plain = yield* openStore(location, { client })
        expect(text((yield* plain.get(keys[0]!)).value)).toBe("after")
        for (const key of keys) {
          expect(yield* partitionsOf(location, key)).toEqual([location.namespace])
          const history = yield* historyOf(plain, key)
          expect(history.slice(0, 2)).toEqual(before.get(key))
        }
        // The bucketed layout is refused now, as any layout but the recorded one.
        expect(
          (yield* Effect.flip(openStoreChecked({ ...location, partitions: bucketed }, {
            client,
            storeOptions: { partitions: bucketed }
          })))._tag
        ).toBe("ConfigInvalid")
      }),
    240_000
  )
})
