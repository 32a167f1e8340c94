/**
 * Stores for tests: each test file gets its own table on the shared DynamoDB
 * Local that the global setup started, and can open several store instances
 * (separate actor systems, as separate processes would have) on one table.
 */
import { DeleteTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { Context, Effect, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import * as path from "node:path"
import { afterAll, beforeAll, expect, inject } from "vitest"
import type { LayoutLease } from "../../src/domain/LayoutLease.ts"
import type { Layout } from "../../src/domain/Partitioning.ts"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import { DataKeys, defaultDataKeyPolicy } from "../../src/infra/crypto/DataKeys.ts"
import type { DataKeyPolicy } from "../../src/infra/crypto/DataKeys.ts"
import { Keyring } from "../../src/infra/crypto/Keyring.ts"
import * as KeySealer from "../../src/infra/crypto/KeySealer.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import { HistoryArea } from "../../src/infra/HistoryArea.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import * as TableProvisioner from "../../src/infra/TableProvisioner.ts"
import type { Compression } from "../../src/infra/ValueChunks.ts"
import { localCredentials } from "../../src/programs/app/StoreLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import type { StoreOptions } from "../../src/programs/store/Store.ts"
import { defaultStoreOptions } from "../../src/programs/store/Store.ts"
import { WriteAcks } from "../../src/programs/store/WriteAcks.ts"
import { Compaction } from "../../src/programs/worker/Compaction.ts"

/**
 * The endpoint of the DynamoDB Local this test file uses: one of those the global setup started, picked by the
 * file's path, so a file (and the processes it starts) always talks to the same one.
 */
export const endpoint = (): string => {
  const endpoints = inject("dynamoEndpoints")
  // Relative, so a file keeps its instance wherever the checkout is.
  const file = path.relative(process.cwd(), expect.getState().testPath ?? "")
  let hash = 0
  for (let i = 0; i < file.length; i++) hash = (hash * 31 + file.charCodeAt(i)) >>> 0
  return endpoints[hash % endpoints.length]!
}

/** A fresh table name, so test files never see each other's data. */
export const freshTableName = (label = "test"): string => `${label}-${randomUUID()}`

/** SDK options for the test DynamoDB Local. */
export const streamsConfig = () => ({
  endpoint: endpoint(),
  region: "us-east-1",
  credentials: localCredentials,
  maxAttempts: 5
})

/** A raw SDK client on the test DynamoDB Local; pass middleware-laden clients for fault injection. */
export const makeClient = (): DynamoDBClient =>
  new DynamoDBClient({ endpoint: endpoint(), region: "us-east-1", credentials: localCredentials, maxAttempts: 5 })

/** Where a test store lives. */
export interface TestTable {
  readonly table: string
  readonly namespace: string
  /** What encryption binds to, when not the table's name (see `DataKeyLocation.storeId`). */
  readonly storeId?: string | undefined
  /** Partitioned prefixes (see `Partitioning`); the store options' `partitions` when left out. */
  readonly partitions?: Layout | undefined
}

/** Creates a table for a test and returns its location. */
export const provisionTable = (client: DynamoDBClient, table = freshTableName()): Effect.Effect<TestTable, unknown> =>
  TableProvisioner.ensureTable({ table, billingMode: "pay_per_request", readCapacityUnits: 5, writeCapacityUnits: 5 })
    .pipe(
      Effect.provideService(Dynamo, Dynamo.fromClient(client)),
      Effect.as({ table, namespace: "test" })
    )

/**
 * One table for a whole test file (made before its tests run, deleted and its client destroyed after) and a fresh
 * namespace per call of `freshLocation`, so the file's tests stay apart without a table each. Call it at the file's
 * top level. Deleting it keeps the suite's in-memory DynamoDB Locals from filling up with items (their stream logs
 * stay: see `globalSetup.ts`).
 */
export const tablePerFile = (label: string) => {
  const client = makeClient()
  let table: TestTable | undefined
  beforeAll(async () => {
    table = await Effect.runPromise(provisionTable(client))
  })
  afterAll(async () => {
    if (table !== undefined) {
      await client.send(new DeleteTableCommand({ TableName: table.table })).catch(() => undefined)
    }
    client.destroy()
  })
  const tableName = (): string => {
    if (table === undefined) throw new Error("tablePerFile: the table is made in beforeAll; use it inside tests")
    return table.table
  }
  return {
    client,
    tableName,
    freshLocation: (): TestTable => ({ table: tableName(), namespace: `${label}-${randomUUID().slice(0, 8)}` })
  }
}

/**
 * The layout lease of test stores and migration runs unless a test gives its own (see `LayoutLease`): a lease of 10 s
 * (re-read every 3.3 s: a DynamoDB Local stalled by a loaded CI machine must not lapse it), and keys move 2 s after
 * a migration is recorded. A drain shorter than the lease is unsafe against a process with a stale layout; the tests
 * that run one (`test/store/layoutFence.test.ts`) give their own lease.
 */
export const testLayoutLease: LayoutLease = { leaseMillis: 10_000, drainMillis: 2_000 }

/** Options for {@link openStore}. */
export interface OpenStoreOptions {
  readonly client?: DynamoDBClient | undefined
  readonly keyring?: Layer.Layer<Keyring> | undefined
  readonly storeOptions?: Partial<StoreOptions> | undefined
  readonly dataKeyPolicy?: Partial<DataKeyPolicy> | undefined
  /** Compression of values stored in chunks (see `ValueChunks`). */
  readonly compression?: Compression | undefined
}

/** A store instance with its own actor system on an existing table, closed with the scope. */
export const openStore = (
  location: TestTable,
  options: OpenStoreOptions = {}
): Effect.Effect<Store["Service"], never, Scope.Scope> =>
  Effect.map(openStoreWithAcks(location, options), ({ store }) => store)

/** {@link openStore} with the instance's write acknowledgements, for views that give read-your-writes on its writes. */
export const openStoreWithAcks = (
  location: TestTable,
  options: OpenStoreOptions = {}
): Effect.Effect<{ readonly store: Store["Service"]; readonly acks: WriteAcks["Service"] }, never, Scope.Scope> =>
  Effect.orDie(openStoreChecked(location, options))

/** {@link openStoreWithAcks} failing as the store's layer does (a layout refused: `ConfigInvalid`). */
export const openStoreChecked = (
  location: TestTable,
  options: OpenStoreOptions = {}
) =>
  Effect.gen(function*() {
    const client = options.client ?? makeClient()
    const layer = Store.layer({ ...defaultStoreOptions, layoutLease: testLayoutLease, ...options.storeOptions }).pipe(
      Layer.provide(Layer.succeed(StreamsApi, fromClients(client, new DynamoDBStreamsClient(streamsConfig())))),
      Layer.provideMerge(eventTableLayer(location, { ...options, client }))
    )
    const context = yield* Layer.build(layer)
    return { store: Context.get(context, Store), acks: Context.get(context, WriteAcks) }
  })

/**
 * The event table of a test location with everything under it: its data keys
 * (wrapped by `options.keyring`, the shared test keyring by default) and the
 * DynamoDB client. Each use is a separate instance, as in another process.
 */
export const eventTableLayer = (
  location: TestTable,
  options: OpenStoreOptions = {}
): Layer.Layer<EventTable | DataKeys | Dynamo> =>
  EventTable.layer(
    { ...location, partitions: location.partitions ?? options.storeOptions?.partitions },
    { compression: options.compression }
  ).pipe(
    Layer.provideMerge(DataKeys.layer(location, { ...defaultDataKeyPolicy, ...options.dataKeyPolicy })),
    Layer.provide(options.keyring ?? sharedKeyring),
    Layer.provideMerge(Layer.succeed(Dynamo, Dynamo.fromClient(options.client ?? makeClient())))
  )

/** Runs `effect` on the event table of `location` built with `layout` (a migration's runner, say), closed after. */
export const withLayout = <A, E>(
  location: TestTable,
  layout: Layout,
  client: DynamoDBClient,
  effect: Effect.Effect<A, E, EventTable | DataKeys | Dynamo>
): Effect.Effect<A, E> =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(eventTableLayer({ ...location, partitions: layout }, { client }))
    return yield* Effect.provide(effect, context)
  }))

const testKeyMaterial = new Uint8Array(randomBytes(32))

/** One keyring for a whole test file, so separate store instances can read each other's values. */
export const testKeyring: Keyring["Service"] = RawAesKeyring.make([
  { id: RawAesKeyring.fingerprint(testKeyMaterial), material: Redacted.make(testKeyMaterial) }
])

/** {@link testKeyring} as a layer. */
export const sharedKeyring: Layer.Layer<Keyring> = Layer.succeed(Keyring, testKeyring)

/**
 * The stored form of a key under sealed prefixes at a test location (see `SealedKeys`), as the store seals it: to
 * find a sealed key's raw items.
 */
export const storedKeyOf = (
  location: TestTable,
  sealed: ReadonlyArray<SealedPrefix>,
  key: string,
  client: DynamoDBClient
): Effect.Effect<string> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(eventTableLayer(location, { client }))
    const sealer = yield* KeySealer.make(Context.get(context, DataKeys), sealed)
    return yield* sealer.seal(key)
  }).pipe(Effect.scoped, Effect.orDie)

/** The compaction of a test location (its own event table, history area and data keys), closed with the scope. */
export const openCompaction = (
  location: TestTable,
  client: DynamoDBClient
): Effect.Effect<Compaction["Service"], never, Scope.Scope> =>
  Effect.map(
    Layer.build(
      Compaction.layer.pipe(
        Layer.provideMerge(HistoryArea.layer),
        Layer.provideMerge(eventTableLayer(location, { client }))
      )
    ),
    (context) => Context.get(context, Compaction)
  )
