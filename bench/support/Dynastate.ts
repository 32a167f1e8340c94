/**
 * dynastate as the bench opens it: `Store.layer` over the bench's counted clients, its event table provisioned,
 * values encrypted under a raw AES keyring that counts its calls (each would be one KMS request with `KmsKeyring`),
 * and, when asked, the projection worker of `WorkerLive` beside it.
 */
import { Context, Effect, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import { randomBytes } from "node:crypto"
import { DataKeys, defaultDataKeyPolicy } from "../../src/infra/crypto/DataKeys.ts"
import { Keyring } from "../../src/infra/crypto/Keyring.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import type { Location } from "../../src/infra/EventRecord.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import * as TableProvisioner from "../../src/infra/TableProvisioner.ts"
import { workerLayer } from "../../src/programs/app/WorkerLive.ts"
import { defaultStoreOptions, Store } from "../../src/programs/store/Store.ts"
import type { StoreOptions } from "../../src/programs/store/Store.ts"
import type { Retention } from "../../src/programs/worker/projections/HistoryProjection.ts"
import { defaultWorkerOptions, ProjectionWorker } from "../../src/programs/worker/ProjectionWorker.ts"
import type { BenchClients } from "./Clients.ts"

/** How often each keyring operation was called: `generate` and `unwrap` are a KMS request each with `KmsKeyring`. */
export interface KeyringCalls {
  generate: number
  wrap: number
  unwrap: number
}

/** `inner`, counting its calls into `calls`. */
export const countingKeyring = (inner: Keyring["Service"], calls: KeyringCalls): Keyring["Service"] => {
  const counted = <A, E>(operation: keyof KeyringCalls, call: () => Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      calls[operation]++
      return call()
    })
  return Keyring.of({
    name: inner.name,
    generate: (context) => counted("generate", () => inner.generate(context)),
    wrap: (plaintext, context) => counted("wrap", () => inner.wrap(plaintext, context)),
    unwrap: (wrapped, context) => counted("unwrap", () => inner.unwrap(wrapped, context))
  })
}

/** A fresh raw AES key, base64, to share between the bench and its child processes. */
export const freshKey = (): string => randomBytes(32).toString("base64")

/** The raw AES keyring of a base64 key. */
export const keyringOf = (key: string) => RawAesKeyring.keyFromBase64(Redacted.make(key), "bench")

/** Creates dynastate's event table unless it exists. */
export const provision = (clients: BenchClients, table: string) =>
  TableProvisioner.ensureTable({ table, billingMode: "pay_per_request", readCapacityUnits: 5, writeCapacityUnits: 5 })
    .pipe(Effect.provideService(Dynamo, Dynamo.fromClient(clients.dynamodb)))

/** What {@link open} needs. */
export interface OpenOptions {
  readonly clients: BenchClients
  readonly location: Location
  readonly key: string
  readonly calls: KeyringCalls
  readonly storeOptions?: StoreOptions | undefined
  /** Runs the projection worker too (compaction with this retention, settling at once, and expiry). */
  readonly worker?: { readonly retention: Retention; readonly group: string } | undefined
}

/** A store instance (its own actors, as a process has) and, if asked, its worker; both end with the scope. */
export const open = (options: OpenOptions) =>
  Effect.gen(function*() {
    const raw = yield* keyringOf(options.key)
    const keyring = countingKeyring(RawAesKeyring.make([raw]), options.calls)
    const services = Store.layer(options.storeOptions ?? defaultStoreOptions).pipe(
      Layer.provideMerge(EventTable.layer(options.location)),
      Layer.provideMerge(DataKeys.layer(options.location, defaultDataKeyPolicy)),
      Layer.provide(Layer.succeed(Keyring, keyring)),
      Layer.provideMerge(Layer.succeed(Dynamo, Dynamo.fromClient(options.clients.dynamodb))),
      Layer.provideMerge(
        Layer.succeed(StreamsApi, fromClients(options.clients.dynamodb, options.clients.streams))
      )
    )
    const context = yield* Layer.build(services)
    const store = Context.get(context, Store)
    if (options.worker === undefined) return { store, worker: undefined }
    // Settling at once makes compaction's whole cost show within the run (it is what a steady state pays anyway).
    const worker = workerLayer(
      {
        ...defaultWorkerOptions(options.location.table),
        leases: { table: `${options.location.table}.projections`, group: options.worker.group }
      },
      // The store above writes in fenced mode, as a default deployment's worker knows from its configuration.
      { retention: options.worker.retention, settleMillis: 0, writerMode: "fenced" }
    ).pipe(Layer.provide(Layer.succeedContext(context)))
    const workerContext = yield* Layer.build(worker)
    return { store, worker: Context.get(workerContext, ProjectionWorker) }
  }) satisfies Effect.Effect<unknown, unknown, Scope.Scope>
