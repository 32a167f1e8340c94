/**
 * dynastate: an actor-style, event-sourced, client-side encrypted key/value store on Amazon DynamoDB, for Effect
 * applications. Each module is exported as a namespace, the way Effect's own packages are:
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Key, Store, StoreConfig, StoreLive } from "dynastate"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* Store.Store
 *   yield* store.put({ key: Key.join("users", "alice"), value: new TextEncoder().encode("hello") })
 * })
 *
 * program.pipe(Effect.provide(StoreLive.layerFile()))
 * ```
 *
 * Subpaths for parts with an audience of their own: `dynastate/testing` (an in-memory store for unit tests),
 * `dynastate/lambda` (the DynamoDB Streams Lambda handler), `dynastate/local` (DynamoDB Local for development).
 */

/** Atomic multi-key writes: `Condition` and `Action` constructors for `Store.atomicWrite`. */
export * as AtomicWrite from "./domain/AtomicWrite.ts"

/** The typed failures of the store, one tag for each failure a caller can act on. */
export * as Errors from "./domain/Errors.ts"

/** The events the store appends (what `history` and projections see). */
export * as Event from "./domain/Event.ts"

/** Items and leases: what callers store and read. */
export * as Item from "./domain/Item.ts"

/** Keys: validation, joining path segments, range ends. */
export * as Key from "./domain/Key.ts"

/** How long the worker keeps superseded events (`forever`, `none`, or a duration). */
export * as Retention from "./domain/Retention.ts"

/** The store service: Teleport's key/value backend contract as an Effect service. */
export * as Store from "./programs/store/Store.ts"

/** The feed of this process's acknowledged writes (which events each appended): what read-your-writes waits on. */
export * as WriteAcks from "./programs/store/WriteAcks.ts"

/**
 * The migration that seals keys written in clear under configured sealed prefixes, in place, while the store serves
 * (`SealMigration.run`, or `dynastate seal-migrate`): resumable, with progress.
 */
export * as SealMigration from "./programs/store/SealMigration.ts"

/**
 * The migration that changes a namespace's partition layout while its stores serve (`PartitionMigration.run` over
 * an event table built with the new layout, or `dynastate partition-migrate`): records the change, moves every key
 * whose partition changes, then settles the new layout; resumable, with progress.
 */
export * as PartitionMigration from "./programs/store/PartitionMigration.ts"

/** Typed keyspaces: a prefix of the store with keys and values described by Effect schemas. */
export * as Keyspace from "./programs/store/Keyspace.ts"

/** Configuration: the YAML file's `storage:` section, `DYNASTATE_*` variables, or Effect's `Config`. */
export * as StoreConfig from "./infra/StoreConfig.ts"

/** Layers giving an application the whole store from configuration (or from its own SDK clients). */
export * as StoreLive from "./programs/app/StoreLive.ts"

/** Layers running the projection worker (history compaction, expiry, your projections) beside the store. */
export * as WorkerLive from "./programs/app/WorkerLive.ts"

/** The worker's HTTP endpoint: `/metrics`, `/healthz`, `/readyz`. */
export * as WorkerHttp from "./programs/app/WorkerHttp.ts"

/** The worker's watch relay: one reading of the stream serving every application process's watches (`watch_port`). */
export * as WatchRelay from "./programs/worker/WatchRelay.ts"

/** TLS for the watch relay's channel (`watch_tls_cert`, `watch_tls_key`, `watch_tls_ca`): loading and checking it. */
export * as RelayTls from "./infra/streams/RelayTls.ts"

/** The worker's health: liveness, readiness (leases and lag) and its gauges. */
export * as WorkerHealth from "./programs/worker/WorkerHealth.ts"

/** Projections: your code reacting to the store's events, in per-key order, at least once. */
export * as Projection from "./programs/worker/Projection.ts"

/** The projection worker service: follows the table's stream and runs projections. */
export * as ProjectionWorker from "./programs/worker/ProjectionWorker.ts"

/** Rebuilds of projections from the event table. */
export * as Rebuild from "./programs/worker/Rebuild.ts"

/** Index views: a view table keyed by a function of each item (a secondary index). */
export * as IndexView from "./programs/views/IndexView.ts"

/** Replicated views: an in-memory replica of a prefix with read-your-writes. */
export * as ReplicatedView from "./programs/views/ReplicatedView.ts"

/** The AWS Lambda handler for DynamoDB Streams event-source mappings (also at `dynastate/lambda`). */
export * as LambdaHandler from "./programs/worker/LambdaHandler.ts"

/** The keyring seam: where master keys live. */
export * as Keyring from "./infra/crypto/Keyring.ts"

/** A keyring of local AES-256 master keys (a key file, or keys you hold). */
export * as RawAesKeyring from "./infra/crypto/RawAesKeyring.ts"

/** A keyring of AWS KMS keys. */
export * as KmsKeyring from "./infra/crypto/KmsKeyring.ts"

/** A keyring that wraps every data key under several keyrings (another region, a break-glass key). */
export * as MultiKeyring from "./infra/crypto/MultiKeyring.ts"

/** Data keys and their shred scopes (`DataKeyPolicy`). */
export * as DataKeys from "./infra/crypto/DataKeys.ts"
