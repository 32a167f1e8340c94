/**
 * A namespace half way through a partition migration, for the tests of what reads or copies a whole namespace
 * meanwhile: laid out as {@link before}, every key with a history copy, two deleted and buried, one key outside the
 * layout; then a migration to {@link after} (which moves every /hot/ key: the old buckets are not the new ones)
 * begun and stopped after moving the first keys.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { expect } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import type { Scope } from "effect"
import type { Layout } from "../../src/domain/Partitioning.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import * as PartitionMigration from "../../src/programs/store/PartitionMigration.ts"
import { defaultStoreOptions, Store } from "../../src/programs/store/Store.ts"
import { rawKeyItems } from "../support/RawTable.ts"
import { eventTableLayer, openCompaction, openStore, streamsConfig, testLayoutLease } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"

export const bytes = (value: string) => new TextEncoder().encode(value)
export const text = (value: Uint8Array) => new TextDecoder().decode(value)

/** The layout the namespace starts with. */
export const before: Layout = [{ prefix: "/hot/", name: "old", buckets: 2 }]
/** The layout it migrates to: every /hot/ key changes partition. */
export const after: Layout = [{ prefix: "/hot/", name: "hot", buckets: 4 }]
/** The keys under the changed prefix, in key order (moved in that order). */
export const keys = Array.from({ length: 10 }, (_, index) => `/hot/k${String(index).padStart(2, "0")}`)
/** Deleted and buried keys: one moved first, one not. */
export const deleted = [keys[1]!, keys[7]!]
/** The key outside the layout. */
export const cold = "/cold/x"
/** How many keys the migration moves before it stops. */
export const movedFirst = 4

/** A store's services at a location with a layout, as the CLI and the worker open them (the store's layer). */
export const storeContext = (client: DynamoDBClient, location: TestTable, layout: Layout) =>
  Layer.build(
    Store.layer({ ...defaultStoreOptions, partitions: layout, layoutLease: testLayoutLease }).pipe(
      Layer.provide(Layer.succeed(StreamsApi, fromClients(client, new DynamoDBStreamsClient(streamsConfig())))),
      Layer.provideMerge(eventTableLayer({ ...location, partitions: layout }, { client }))
    )
  )

/** Writes the namespace as {@link before} lays it out, compacted (history copies, graves). */
export const populate = (client: DynamoDBClient, location: TestTable): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const old = yield* openStore({ ...location, partitions: before }, { client })
    for (const key of keys) for (const version of [1, 2]) yield* old.put({ key, value: bytes(`${key}@${version}`) })
    yield* old.put({ key: cold, value: bytes("cold") })
    for (const key of deleted) yield* old.delete(key)
    const compaction = yield* openCompaction({ ...location, partitions: before }, client)
    yield* compaction.all(() => Effect.void, { settleMillis: 0 })
  }).pipe(Effect.orDie)

/** Begins the migration to {@link after} and stops it once it moved {@link movedFirst} keys; checks where keys are. */
export const moveFirstKeys = (client: DynamoDBClient, location: TestTable) =>
  Effect.gen(function*() {
    const reports = yield* Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(eventTableLayer({ ...location, partitions: after }, { client }))
      const migration = PartitionMigration.migrate({ concurrency: 1, lease: testLayoutLease }).pipe(
        Stream.filter((report) => report.waitMillis === undefined),
        Stream.take(movedFirst)
      )
      return yield* Stream.runCollect(migration).pipe(Effect.provide(context))
    }))
    expect(reports.map((report) => report.moved)).toEqual([1, 2, 3, 4])
    // The keys after the first ones are still in their old partitions, the first ones in their new ones alone.
    const itemsOf = (layout: Layout, key: string) =>
      Effect.promise(() => rawKeyItems(client, { ...location, partitions: layout }, key))
    for (const key of [keys[4]!, keys[9]!]) expect(yield* itemsOf(before, key)).toHaveLength(1)
    expect(yield* itemsOf(before, keys[0]!)).toHaveLength(0)
    expect(yield* itemsOf(after, keys[0]!)).toHaveLength(1)
  }).pipe(Effect.orDie)
