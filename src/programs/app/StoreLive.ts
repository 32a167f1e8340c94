/**
 * The store assembled from configuration: the DynamoDB client (or the embedded
 * DynamoDB Local, shared by every process of the data directory), the keyring,
 * the provisioned table, and the store itself. How much it may set up is the
 * caller's choice (`OpenOptions`): an application creates its table and its
 * first key; a CLI read creates neither.
 */
import type { DynamoDBClient, DynamoDBClientConfig } from "@aws-sdk/client-dynamodb"
import type { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { Effect, Layer, Option, Redacted, Schema, Stream } from "effect"
import * as fs from "node:fs"
import { TableSchemaMismatch } from "../../domain/Errors.ts"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import * as Partitioning from "../../domain/Partitioning.ts"
import type { Layout } from "../../domain/Partitioning.ts"
import { defaultWriteFence } from "../../domain/WriteFence.ts"
import type { WriteFence } from "../../domain/WriteFence.ts"
import { DataKeys, defaultDataKeyPolicy } from "../../infra/crypto/DataKeys.ts"
import type { DataKeyPolicy } from "../../infra/crypto/DataKeys.ts"
import * as DataKeyStore from "../../infra/crypto/DataKeyStore.ts"
import { Keyring } from "../../infra/crypto/Keyring.ts"
import type { KeyringError } from "../../infra/crypto/Keyring.ts"
import * as KmsKeyring from "../../infra/crypto/KmsKeyring.ts"
import * as MultiKeyring from "../../infra/crypto/MultiKeyring.ts"
import * as RawAesKeyring from "../../infra/crypto/RawAesKeyring.ts"
import { SigningSha256 } from "../../infra/crypto/SigningHash.ts"
import { base64Decoder, Dynamo } from "../../infra/Dynamo.ts"
import type { Location } from "../../infra/EventRecord.ts"
import { EventTable } from "../../infra/EventTable.ts"
import type { EventTableOptions } from "../../infra/EventTable.ts"
import * as SharedDynamoDBLocal from "../../infra/local/SharedDynamoDBLocal.ts"
import { ConfigInvalid, fromConfig, isEmbedded, layoutLeaseOf, load } from "../../infra/StoreConfig.ts"
import type { ConfigProblem, StoreConfig } from "../../infra/StoreConfig.ts"
import * as RelayTls from "../../infra/streams/RelayTls.ts"
import { fromClients, StreamsApi } from "../../infra/streams/StreamsApi.ts"
import * as TableProvisioner from "../../infra/TableProvisioner.ts"
import { defaultStoreOptions, Store } from "../store/Store.ts"
import type { StoreOptions } from "../store/Store.ts"
import { resolvePaths } from "./DataDir.ts"

/** How much opening a store may set up; both default to yes, as an application's first start needs. */
export interface OpenOptions {
  /** Create the table when it is missing (else fail with `TableMissing`, touching nothing). */
  readonly createTable?: boolean | undefined
  /**
   * Create the raw AES key file when it is missing, but only for a store that holds no data key yet (else fail
   * with `KeyFileMissing`): a new key beside data encrypted under another one would only fail to decrypt it.
   */
  readonly createKey?: boolean | undefined
}

/** The table is missing and this caller may not create it. */
export class TableMissing extends Schema.TaggedError<TableMissing>()("TableMissing", {
  table: Schema.String
}) {
  override get message() {
    return `table ${this.table} does not exist: create it with \`dynastate provision\` ` +
      "(or `dynastate init` for a new store)"
  }
}

/** The raw AES key file is missing and may not be created here (see `reason`). */
export class KeyFileMissing extends Schema.TaggedError<KeyFileMissing>()("KeyFileMissing", {
  file: Schema.String,
  reason: Schema.Literals(["not-created", "store-has-data"])
}) {
  override get message() {
    return this.reason === "not-created"
      ? `no key file at ${this.file}: \`dynastate init\` creates one for a new store (or set storage.keyring_file, ` +
        "storage.keyring_key or storage.kms_key)"
      : `no key file at ${this.file}, and the store already holds data encrypted under another key: point ` +
        "storage.keyring_file at that key (a new key could not decrypt it); `dynastate init` does not replace a lost key"
  }
}

/** Credentials DynamoDB Local accepts; it checks only their shape. */
export const localCredentials = { accessKeyId: "dynastate", secretAccessKey: "dynastate" }

/** The static credentials the configuration names (`access_key` and `secret_key`), if it names both. */
const configuredCredentials = (config: StoreConfig) =>
  Option.isSome(config.accessKey) && Option.isSome(config.secretKey)
    ? { accessKeyId: Redacted.value(config.accessKey.value), secretAccessKey: Redacted.value(config.secretKey.value) }
    : undefined

/** SDK options for a configuration whose endpoint is already resolved. */
export const clientConfig = (config: StoreConfig, endpoint: Option.Option<string>): DynamoDBClientConfig => {
  const credentials = configuredCredentials(config) ?? (Option.isSome(endpoint) ? localCredentials : undefined)
  return {
    region: Option.getOrElse(config.region, () => "us-east-1"),
    maxAttempts: 5,
    base64Decoder,
    sha256: SigningSha256,
    ...(Option.isSome(endpoint) ? { endpoint: endpoint.value } : {}),
    ...(credentials ? { credentials } : {})
  }
}

/** The DynamoDB and DynamoDB Streams clients for a configuration, starting the embedded DynamoDB Local when asked for. */
export const dynamoLayer = (config: StoreConfig) =>
  Layer.unwrap(Effect.gen(function*() {
    const clients = (options: DynamoDBClientConfig) => Layer.mergeAll(Dynamo.layer(options), StreamsApi.layer(options))
    if (!isEmbedded(config)) return clients(clientConfig(config, config.endpoint))
    const local = yield* SharedDynamoDBLocal.acquire({ dataDir: config.dataDir })
    yield* Effect.logInfo(
      `no storage.endpoint or storage.region set: using the embedded DynamoDB Local on ${local.endpoint} ` +
        `(${local.started ? "started" : "shared"}, data in ${config.dataDir})`
    )
    return clients(clientConfig(config, Option.some(local.endpoint)))
  }))

/** The keyring for a configuration: an inline raw key, or the key file (created on first use). */
export const keyringLayer = (config: StoreConfig): Layer.Layer<Keyring, ConfigInvalid | KeyringError> => {
  if (Option.isSome(config.kmsKey)) {
    const generator = config.kmsKey.value
    return Layer.effect(
      Keyring,
      Effect.gen(function*() {
        const first = yield* kmsKeyring(config, generator)
        const others = yield* Effect.forEach(config.kmsExtraKeys, (keyId) => kmsKeyring(config, keyId))
        return others.length === 0 ? first : MultiKeyring.make(first, others)
      })
    )
  }
  if (config.kmsExtraKeys.length > 0) {
    return Layer.effect(
      Keyring,
      Effect.fail(new ConfigInvalid({ field: "storage.kms_extra_keys", reason: "needs storage.kms_key" }))
    )
  }
  return Option.match(config.keyringKey, {
    onSome: (key) =>
      Layer.effect(Keyring, Effect.map(RawAesKeyring.keyFromBase64(key), (raw) => RawAesKeyring.make([raw]))),
    onNone: () => RawAesKeyring.layerFromFile(config.keyringFile)
  })
}

/** The region of a KMS key ARN, so keys of other regions get a client there. */
const regionOfArn = (keyId: string): string | undefined => /^arn:aws[a-z-]*:kms:([a-z0-9-]+):/.exec(keyId)?.[1]

/** A KMS keyring for one key, with a client that lives as long as the scope. */
const kmsKeyring = (config: StoreConfig, keyId: string) =>
  KmsKeyring.scoped({
    keyId,
    region: regionOfArn(keyId) ?? Option.getOrUndefined(config.region),
    endpoint: Option.getOrUndefined(config.kmsEndpoint),
    credentials: configuredCredentials(config)
  })

/** The keyring of a configuration whose key file, when missing, is created only as `open` allows (see `OpenOptions`). */
export const guardedKeyringLayer = (config: StoreConfig, open: OpenOptions = {}) => {
  const usesKeyFile = Option.isNone(config.kmsKey) && Option.isNone(config.keyringKey) &&
    config.kmsExtraKeys.length === 0
  if (!usesKeyFile) return keyringLayer(config)
  return Layer.unwrap(Effect.gen(function*() {
    if (fs.existsSync(config.keyringFile)) return keyringLayer(config)
    if (open.createKey === false) {
      return yield* new KeyFileMissing({ file: config.keyringFile, reason: "not-created" })
    }
    const location = { table: config.tableName, namespace: config.namespace }
    const existing = yield* DataKeyStore.list(location).pipe(
      Stream.runHead,
      // No table yet: no data either.
      Effect.catchIf(
        (error) => error._tag === "StorageFailure" && error.reason.startsWith("ResourceNotFoundException"),
        () => Effect.succeed(Option.none())
      )
    )
    if (Option.isSome(existing)) {
      return yield* new KeyFileMissing({ file: config.keyringFile, reason: "store-has-data" })
    }
    return keyringLayer(config)
  }))
}

/** Checks that the table exists with the store's schema, creating nothing. */
export const requireTable = (table: string) =>
  TableProvisioner.existingTable(table).pipe(
    Effect.flatMap((existing): Effect.Effect<void, TableMissing | TableSchemaMismatch> => {
      if (existing === undefined) return Effect.fail(new TableMissing({ table }))
      const differences = TableProvisioner.schemaDifferences(existing)
      return differences.length > 0 ? Effect.fail(new TableSchemaMismatch({ table, differences })) : Effect.void
    })
  )

/** The table of a configuration, created when missing if `open` allows it (else `TableMissing`). */
export const tableLayer = (config: StoreConfig, open: OpenOptions = {}) =>
  Layer.effectDiscard(
    open.createTable === false
      ? requireTable(config.tableName)
      : TableProvisioner.ensureTable({
        table: config.tableName,
        billingMode: config.billingMode,
        readCapacityUnits: config.readCapacityUnits,
        writeCapacityUnits: config.writeCapacityUnits
      })
  )

/**
 * The event table of a configuration with its data keys (which need a `Keyring` and `Dynamo`); see `tableLayer`.
 * Its keys are partitioned by the configuration's `partitioned_prefixes`, else by `partitions` (a layer option).
 */
export const eventTableLayer = (config: StoreConfig, partitions?: Layout | undefined) =>
  encryptedEventTable(
    {
      table: config.tableName,
      namespace: config.namespace,
      storeId: Option.getOrUndefined(config.storeId),
      partitions: layoutOf(config, partitions)
    },
    defaultDataKeyPolicy,
    { compression: config.compression }
  )

/** The event table at a location with its data keys (which need a `Keyring` and `Dynamo`). */
export const encryptedEventTable = (
  location: Location,
  policy: DataKeyPolicy = defaultDataKeyPolicy,
  options?: EventTableOptions
) => EventTable.layer(location, options).pipe(Layer.provideMerge(DataKeys.layer(location, policy)))

/**
 * The event table of a configuration with its data keys, keyring and DynamoDB clients, but no store: what a layout
 * migration runs on (see `PartitionMigration`), since a store configured with the new layout refuses to open until
 * the migration is recorded.
 */
export const tableOnlyLayer = (config: StoreConfig, open: OpenOptions = {}) => {
  const resolved = resolvePaths(config)
  return eventTableLayer(resolved).pipe(
    Layer.provide(Layer.provide(guardedKeyringLayer(resolved, open), tableLayer(resolved, open))),
    Layer.provideMerge(dynamoLayer(resolved))
  )
}

/** SDK clients an application brings (its own credentials, middleware, tracing); they stay the application's to destroy. */
export interface Clients {
  readonly dynamodb: DynamoDBClient
  readonly streams: DynamoDBStreamsClient
}

/** The DynamoDB and DynamoDB Streams services over clients of the application's. */
export const clientsLayer = (clients: Clients): Layer.Layer<Dynamo | StreamsApi> =>
  Layer.mergeAll(
    Layer.succeed(Dynamo, Dynamo.fromClient(clients.dynamodb)),
    Layer.succeed(StreamsApi, fromClients(clients.dynamodb, clients.streams))
  )

/** The layout of a store: the configuration's partitioned prefixes, unless it names none and `options` some. */
const layoutOf = (config: StoreConfig, partitions: Layout | undefined): Layout | undefined =>
  config.partitionedPrefixes.length > 0 ? config.partitionedPrefixes : partitions

/**
 * Store options with the configuration's write fence, write mode and layout lease (`max_state_age`, `write_timeout`,
 * `write_mode`, `layout_lease`): the configuration is what the worker checks its settle time against and what a
 * layout migration waits for, so it wins over `options`. Watches read through the worker at `watch_endpoint` (with
 * `tls`, the configuration's `RelayTls.load`ed) unless `options` names a relay of its own.
 */
export const storeOptions = (
  config: StoreConfig,
  options: StoreOptions = defaultStoreOptions,
  tls?: RelayTls.RelayTls
): StoreOptions => ({
  ...options,
  watches: options.watches?.relay !== undefined || Option.isNone(config.watchEndpoint)
    ? options.watches
    : { ...options.watches, relay: { address: config.watchEndpoint.value, tls } },
  // Every process of a store must seal alike, or one would write in clear what another seals: the file decides,
  // unless it names none and the application passes its own.
  sealed: config.sealedPrefixes.length > 0 ? config.sealedPrefixes : options.sealed,
  // Likewise the layout: the namespace's record makes sure every process routes alike (see `LayoutRecord`).
  partitions: layoutOf(config, options.partitions),
  actors: { ...options.actors, fence: config.writeFence, writeMode: config.writeMode },
  atomicWrite: { ...options.atomicWrite, fence: config.writeFence, writeMode: config.writeMode },
  // Every process of a namespace must hold the same layout lease: a layout migration waits for it.
  layoutLease: layoutLeaseOf(config)
})

/**
 * Store options that set a write fence or write mode other than the default and the configuration's: refused, since
 * the configuration wins (see {@link storeOptions}) and an option silently replaced would leave writers on a fence
 * their caller did not choose.
 */
export const conflictingOptions = (config: StoreConfig, options: StoreOptions): ConfigInvalid | undefined => {
  const problems: Array<ConfigProblem> = []
  const sameFence = (a: WriteFence, b: WriteFence) =>
    a.maxStateAgeMillis === b.maxStateAgeMillis && a.writeTimeoutMillis === b.writeTimeoutMillis
  for (const [name, given] of [["actors", options.actors], ["atomicWrite", options.atomicWrite]] as const) {
    if (!sameFence(given.fence, defaultWriteFence) && !sameFence(given.fence, config.writeFence)) {
      problems.push({
        field: "max_state_age",
        reason: `the store options' ${name}.fence (max state age ${given.fence.maxStateAgeMillis} ms, write timeout ` +
          `${given.fence.writeTimeoutMillis} ms) differs from the configuration's; the write fence is configuration ` +
          "(max_state_age, write_timeout), which the worker checks its settle time against: set it there"
      })
    }
    if (given.writeMode !== undefined && given.writeMode !== "fenced" && given.writeMode !== config.writeMode) {
      problems.push({
        field: "write_mode",
        reason: `the store options' ${name}.writeMode ${given.writeMode} differs from the configuration's ` +
          `${config.writeMode}: set write_mode in the configuration`
      })
    }
  }
  const lease = options.layoutLease
  if (lease !== undefined && lease.leaseMillis !== config.layoutLeaseMillis) {
    problems.push({
      field: "storage.layout_lease",
      reason: `the store options' layoutLease (${lease.leaseMillis} ms) differs from the configuration's ` +
        `(${config.layoutLeaseMillis} ms): every process of a namespace must hold the same, set layout_lease`
    })
  }
  const partitions = options.partitions
  if (
    partitions !== undefined && config.partitionedPrefixes.length > 0 &&
    !Partitioning.same(partitions, config.partitionedPrefixes)
  ) {
    problems.push({
      field: "storage.partitioned_prefixes",
      reason: `the store options' partitions [${Partitioning.describe(partitions)}] differ from the configuration's ` +
        `[${Partitioning.describe(config.partitionedPrefixes)}]: give the layout in one place`
    })
  }
  const [first, ...rest] = problems
  return first === undefined ? undefined : ConfigInvalid.of([first, ...rest])
}

const assemble = <E1, E2, R2>(
  config: StoreConfig,
  clients: Layer.Layer<Dynamo | StreamsApi, E1>,
  keyring: Layer.Layer<Keyring, E2, R2>,
  options: StoreOptions,
  open: OpenOptions
) => {
  const assembled = (tls: RelayTls.RelayTls | undefined) =>
    Store.layer(storeOptions(config, options, tls)).pipe(
      Layer.provideMerge(eventTableLayer(config, options.partitions)),
      // The table first: a reader told the table is missing learns the first thing to do.
      Layer.provide(Layer.provide(keyring, tableLayer(config, open))),
      Layer.provideMerge(clients)
    )
  // Checked before anything is built: no DynamoDB Local started, no table touched.
  const conflict = conflictingOptions(config, options)
  return Layer.unwrap(
    conflict !== undefined
      ? Effect.fail(conflict)
      : Effect.map(
        Option.isSome(config.watchEndpoint) ? RelayTls.load(config.watchTls) : Effect.succeed(undefined),
        assembled
      )
  )
}

/**
 * The whole store for a configuration: the DynamoDB clients (or the embedded DynamoDB Local), the keyring, the
 * table (created when missing unless `open` says otherwise) and the store, ready to provide to an application.
 * Local paths left at their defaults are placed by `DataDir.resolvePaths` (never the working directory).
 */
export const layer = (config: StoreConfig, options: StoreOptions = defaultStoreOptions, open: OpenOptions = {}) => {
  const resolved = resolvePaths(config)
  return assemble(resolved, dynamoLayer(resolved), guardedKeyringLayer(resolved, open), options, open)
}

/**
 * The whole store over SDK clients of the application's, for custom credentials, middleware or X-Ray; the keyring
 * is the configuration's unless one is given (for example `KmsKeyring.layerFromClient` over your own KMS client).
 * The configuration's endpoint, region and keys are not used for DynamoDB: the clients carry them.
 */
export const layerClients = <E = never>(
  config: StoreConfig,
  clients: Clients & { readonly keyring?: Layer.Layer<Keyring, E> | undefined },
  options: StoreOptions = defaultStoreOptions,
  open: OpenOptions = {}
) => {
  const resolved = resolvePaths(config)
  const keyring: Layer.Layer<
    Keyring,
    E | ConfigInvalid | KeyringError | KeyFileMissing | Throttled | StorageFailure,
    Dynamo
  > = clients.keyring ?? guardedKeyringLayer(resolved, open)
  return assemble(resolved, clientsLayer(clients), keyring, options, open)
}

/** The whole store configured through Effect's `Config` (the current `ConfigProvider`, keys under `storage`). */
export const layerConfig = (options: StoreOptions = defaultStoreOptions) =>
  Layer.unwrap(Effect.map(fromConfig, (config) => layer(config, options)))

/** The whole store configured by the YAML file (`file`, or `DYNASTATE_CONFIG`) and `DYNASTATE_*` variables. */
export const layerFile = (
  options: { readonly file?: string | undefined; readonly env?: Record<string, string | undefined> | undefined } = {},
  storeOptions: StoreOptions = defaultStoreOptions,
  open: OpenOptions = {}
) =>
  Layer.unwrap(Effect.map(load(options), (config) => {
    const env = options.env ?? process.env
    return layer(resolvePaths(config, { configFile: options.file ?? env["DYNASTATE_CONFIG"], env }), storeOptions, open)
  }))
