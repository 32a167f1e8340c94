/** A worker's watch relay and the processes around it, for the relay's tests (plain TCP or TLS). */
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import type { RelayTls } from "../../src/infra/streams/RelayTls.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import { defaultStoreOptions, Store } from "../../src/programs/store/Store.ts"
import { WatchRelay } from "../../src/programs/worker/WatchRelay.ts"
import * as Relay from "../../src/programs/worker/WatchRelay.ts"
import { eventTableLayer, makeClient, provisionTable, streamsConfig } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"

/** The Streams calls of one process, counted: `GetRecords` says whether it reads the stream itself. */
export const countingStreams = () => {
  const api = fromClients(makeClient(), new DynamoDBStreamsClient(streamsConfig()))
  const counts = { getRecords: 0 }
  const counted: StreamsApi["Service"] = {
    ...api,
    getRecords: (shardId, iterator) =>
      Effect.suspend(() => {
        counts.getRecords++
        return api.getRecords(shardId, iterator)
      })
  }
  return { counts, layer: Layer.succeed(StreamsApi, counted) }
}

/** A worker's relay on `port`, until `stop`. */
export const startRelay = (location: TestTable, port: number, capacity = 256, tls?: RelayTls) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const client = makeClient()
    const layer = Relay.layer({ host: "127.0.0.1", port, tls }, {
      leases: { table: `${location.table}.projections`, group: "default" },
      capacity
    }).pipe(
      Layer.provide(Layer.succeed(StreamsApi, fromClients(client, new DynamoDBStreamsClient(streamsConfig())))),
      Layer.provide(eventTableLayer(location, { client }))
    )
    const context = yield* Layer.buildWithScope(layer, scope).pipe(Effect.orDie)
    return { relay: Context.get(context, WatchRelay), stop: Scope.close(scope, Exit.void) }
  })

/** A store (another process, as far as the stream is concerned) whose watches go through the relay at `port`. */
export const relayedStore = (location: TestTable, port: number, tls?: RelayTls) =>
  Effect.gen(function*() {
    const client = makeClient()
    const streams = countingStreams()
    const layer = Store.layer({
      ...defaultStoreOptions,
      watches: { relay: { address: { host: "127.0.0.1", port }, tls, retry: "300 millis" } }
    }).pipe(Layer.provide(streams.layer), Layer.provideMerge(eventTableLayer(location, { client })))
    const context = yield* Layer.build(layer)
    return { store: Context.get(context, Store), counts: streams.counts }
  })

export const freshTable = Effect.gen(function*() {
  return yield* provisionTable(makeClient()).pipe(Effect.orDie)
})

/** Whether the count stays put for a while: the process is not polling the stream. */
export const quiet = (counts: { getRecords: number }) =>
  Effect.gen(function*() {
    const before = counts.getRecords
    yield* Effect.sleep(800)
    return counts.getRecords === before
  })

/** A store of another process, reading the stream itself if it watched (it only writes here). */
export const openPlainStore = (location: TestTable) =>
  Effect.gen(function*() {
    const client = makeClient()
    const layer = Store.layer(defaultStoreOptions).pipe(
      Layer.provide(Layer.succeed(StreamsApi, fromClients(client, new DynamoDBStreamsClient(streamsConfig())))),
      Layer.provideMerge(eventTableLayer(location, { client }))
    )
    return Context.get(yield* Layer.build(layer), Store)
  })

/** Polls an effectful condition until it holds or `timeoutMillis` passes. */
export const eventuallyEffect = (condition: Effect.Effect<boolean>, timeoutMillis = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (Date.now() < deadline) {
      if (yield* condition) return true
      yield* Effect.sleep(50)
    }
    return false
  })
