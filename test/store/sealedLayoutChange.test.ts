/**
 * Sealing and a layout change over the same keys (see `PartitionMigration`, `SealMigration`, `Relocation`): a sealed
 * prefix inside a partitioned one moved to another layout by the partition migration, and a prefix inside a bucketed
 * one sealed in place. Either way every key keeps its value, revisions and history (history copies and graves
 * included), its items end up in the partition its stored key routes to, and nothing is left in an old partition or
 * in clear; an audit finds nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import type { Layout } from "../../src/domain/Partitioning.ts"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import { DataKeys } from "../../src/infra/crypto/DataKeys.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import { areaPartition, keyPartition, livePartitions } from "../../src/infra/PartitionKeys.ts"
import * as Audit from "../../src/programs/ops/Audit.ts"
import * as PartitionMigration from "../../src/programs/store/PartitionMigration.ts"
import * as SealMigration from "../../src/programs/store/SealMigration.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import { rawKeyItems, rawPartition } from "../support/RawTable.ts"
import {
  eventTableLayer,
  openCompaction,
  openStore,
  storedKeyOf,
  tablePerFile,
  testLayoutLease
} from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"
import { itemsHolding } from "./contract/harness.ts"

const { client, freshLocation } = tablePerFile("sealedlayout")
const bytes = (value: string) => new TextEncoder().encode(value)
const text = (value: Uint8Array | undefined) => new TextDecoder().decode(value ?? new Uint8Array())
const before: Layout = [{ prefix: "/hot/", name: "old", buckets: 2 }]
const after: Layout = [{ prefix: "/hot/", name: "hot", buckets: 4 }]
const secretOf = (index: number) => `tok-${index}-secret`

/** Keys with two versions each, the second one deleted, history copies and a grave made by compaction. */
const populate = (store: Store["Service"], location: TestTable, keys: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    for (const key of keys) for (const version of [1, 2]) yield* store.put({ key, value: bytes(`${key}@${version}`) })
    yield* store.delete(keys[1]!)
    const compaction = yield* openCompaction(location, client)
    yield* compaction.all(() => Effect.void, { settleMillis: 0 })
  }).pipe(Effect.orDie)

/** What a reader sees of each key: its value (or error) and its history with revisions and values. */
const snapshot = (store: Store["Service"], keys: ReadonlyArray<string>) =>
  Effect.forEach(keys, (key) =>
    Effect.gen(function*() {
      const current = yield* store.get(key).pipe(
        Effect.map((item) => ({ value: text(item.value), revision: item.revision })),
        Effect.catch((error) => Effect.succeed({ error: error._tag }))
      )
      const history = yield* Stream.runCollect(store.history(key))
      return { key, current, history: history.map((event) => [event.seq, event.op, event.revision, text(event.value)]) }
    }))

/** Items of the table holding one of `secrets` anywhere: a key left in clear. */
const inClear = (location: TestTable, secrets: ReadonlyArray<string>) => itemsHolding(client, location.table, secrets)

/** An audit of the namespace at a location: what it finds, and how many keys it met. */
const auditOf = (location: TestTable) =>
  withTable(
    location,
    Effect.gen(function*() {
      const report = yield* Audit.audit(yield* EventTable, yield* DataKeys)
      return { findings: report.findings, keys: report.keys }
    })
  )

const withTable = <A, E, R>(location: TestTable, effect: Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.gen(function*() {
    return yield* effect.pipe(Effect.provide(yield* Layer.build(eventTableLayer(location, { client }))))
  }))

describe("sealing and a layout change over the same keys", () => {
  it.live(
    "a sealed prefix inside a partitioned one moves to the new layout sealed, with nothing left behind",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const sealed: ReadonlyArray<SealedPrefix> = [{ prefix: "/hot/secret/", seal: "rest" }]
        const keys = [0, 1, 2, 3, 4].map((index) => `/hot/secret/${secretOf(index)}`)
        const old = yield* openStore({ ...location, partitions: before }, {
          client,
          storeOptions: { sealed, partitions: before }
        })
        yield* populate(old, { ...location, partitions: before }, keys)
        const seen = yield* snapshot(old, keys)
        expect(seen[0]!.history).toHaveLength(2)
        expect(seen[1]!.current).toEqual({ error: "NotFound" })

        const done = yield* withTable(
          { ...location, partitions: after },
          PartitionMigration.run({ lease: testLayoutLease })
        )
        expect(done).toMatchObject({ found: keys.length, moved: keys.length, failed: 0, done: true })
        const moved = yield* openStore({ ...location, partitions: after }, {
          client,
          storeOptions: { sealed, partitions: after }
        })
        expect(yield* snapshot(moved, keys)).toEqual(seen)

        // Each stored (sealed) key's events in its new bucket alone; every area of the old buckets empty.
        for (const key of keys.filter((key) => key !== keys[1])) {
          const stored = yield* storedKeyOf(location, sealed, key, client)
          const items = yield* Effect.promise(() => rawKeyItems(client, { ...location, partitions: after }, stored))
          expect(items.map((item) => item[Attr.partition]?.S)).toEqual([
            keyPartition({ ...location, partitions: after }, stored)
          ])
        }
        const oldBuckets = livePartitions({ namespace: location.namespace, partitions: before }).slice(1)
        expect(oldBuckets).toHaveLength(2)
        for (const live of oldBuckets) {
          for (
            const partition of [
              live,
              ...(["history", "graves", "chunks"] as const).map((area) => areaPartition(live, area))
            ]
          ) {
            expect(yield* Effect.promise(() => rawPartition(client, location.table, partition))).toEqual([])
          }
        }
        expect(yield* inClear(location, keys.map((_, index) => secretOf(index)))).toEqual([])
        expect(yield* auditOf({ ...location, partitions: after })).toEqual({ findings: [], keys: keys.length })
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "sealing a prefix inside a bucketed one moves each key to its sealed form's bucket, leaving nothing in clear",
    () =>
      Effect.gen(function*() {
        const location = { ...freshLocation(), partitions: after }
        const sealed: ReadonlyArray<SealedPrefix> = [{ prefix: "/hot/tok/", seal: "rest" }]
        const keys = [0, 1, 2, 3, 4].map((index) => `/hot/tok/${secretOf(index)}`)
        const clear = yield* openStore(location, { client, storeOptions: { partitions: after } })
        yield* populate(clear, location, keys)
        const seen = yield* snapshot(clear, keys)
        expect(yield* inClear(location, [secretOf(0)])).not.toEqual([])

        const [report] = yield* withTable(location, SealMigration.run(sealed, { lease: testLayoutLease }))
        expect(report).toMatchObject({ found: keys.length, moved: keys.length, failed: 0, done: true })
        const sealedStore = yield* openStore(location, { client, storeOptions: { sealed, partitions: after } })
        expect(yield* snapshot(sealedStore, keys)).toEqual(seen)
        for (const key of keys.filter((key) => key !== keys[1])) {
          const stored = yield* storedKeyOf(location, sealed, key, client)
          const items = yield* Effect.promise(() => rawKeyItems(client, location, stored))
          expect(items.map((item) => item[Attr.partition]?.S)).toEqual([keyPartition(location, stored)])
        }
        expect(yield* inClear(location, keys.map((_, index) => secretOf(index)))).toEqual([])
        expect(yield* auditOf(location)).toEqual({ findings: [], keys: keys.length })
      }).pipe(Effect.scoped),
    60_000
  )
})
