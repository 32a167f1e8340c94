/**
 * The worker's watch relay: one more reading of the table's stream, shared by the watches of every application
 * process that connects (`WatchRpc`), so the stream has two readers per shard (this and the projection worker's)
 * however many processes watch. It starts each shard where the projection worker's checkpoint says (a known
 * sequence number, so every position it hands out is exact), relays the namespace's event items as stored
 * (encrypted), and ends a subscription that falls behind instead of buffering without bound: that process reads
 * the stream itself until it can come back (see the store's `WatchSource`).
 */
import { NodeSocketServer } from "@effect/platform-node"
import { Cause, Context, Deferred, Effect, Layer, Metric, Queue, Schedule, Schema, Stream } from "effect"
import { NetAddress } from "effect/net"
import { RpcServer } from "effect/rpc"
import { SocketServer } from "effect/socket"
import { Dynamo } from "../../infra/Dynamo.ts"
import { EventTable } from "../../infra/EventTable.ts"
import * as ProjectionLeases from "../../infra/ProjectionLeases.ts"
import type { LeaseLocation } from "../../infra/ProjectionLeases.ts"
import * as RelayTls from "../../infra/streams/RelayTls.ts"
import { locate } from "../../infra/streams/StreamEvents.ts"
import type { ShardCoordinator } from "../../infra/streams/StreamReader.ts"
import { listShards, readStream } from "../../infra/streams/StreamReader.ts"
import { StreamsApi } from "../../infra/streams/StreamsApi.ts"
import type { ShardPosition } from "../../infra/streams/StreamsApi.ts"
import * as WatchRpc from "../../infra/streams/WatchRpc.ts"

/** Relay settings. */
export interface RelayOptions {
  /** The projection workers' lease table and group: each shard's reading starts at their checkpoint. */
  readonly leases: LeaseLocation
  /** Messages queued for one subscriber before it is dropped as too slow (it then reads the stream itself). */
  readonly capacity: number
}

interface Subscriber {
  readonly queue: Queue.Queue<WatchRpc.RelayMessage, WatchRpc.RelayRefused | Cause.Done>
}

/** Application processes whose watches the relay serves now. */
export const subscribersMetric = Metric.gauge("dynastate_worker_watch_subscribers", {
  description: "application processes whose watches the worker's relay serves"
})

/** Subscriptions the relay ended because the process fell behind its buffer (it then reads the stream itself). */
export const droppedMetric = Metric.counter("dynastate_worker_watch_subscribers_dropped", {
  description: "watch subscriptions dropped for falling behind the relay's buffer",
  incremental: true
})

/** What the relay is doing, for tests and the status of the worker. */
export interface RelayStatus {
  readonly subscribers: number
  readonly live: boolean
  readonly positions: { readonly arn: string; readonly shards: Readonly<Record<string, string>> } | undefined
}

/** The worker's watch relay. */
export class WatchRelay extends Context.Service<WatchRelay, {
  /** A subscription: `Ready` once the relay is live, then every record it reads (see `WatchRpc.RelayMessage`). */
  readonly subscribe: Stream.Stream<WatchRpc.RelayMessage, WatchRpc.RelayRefused>
  readonly status: Effect.Effect<RelayStatus>
}>()("dynastate/WatchRelay") {
  /** The relay's reader runs while the layer lives, restarted (from the checkpoints) if it fails. */
  static readonly layer = (options: RelayOptions): Layer.Layer<WatchRelay, never, EventTable | StreamsApi | Dynamo> =>
    Layer.effect(
      WatchRelay,
      Effect.gen(function*() {
        const table = yield* EventTable
        const api = yield* StreamsApi
        const dynamo = yield* Dynamo
        const subscribers = new Set<Subscriber>()
        let reading: Reading | undefined

        const drop = (subscriber: Subscriber, reason: string) => {
          subscribers.delete(subscriber)
          Queue.failCauseUnsafe(subscriber.queue, Cause.fail(new WatchRpc.RelayRefused({ reason })))
        }
        let overflowed = 0
        const broadcast = (message: WatchRpc.RelayMessage) => {
          for (const subscriber of subscribers) {
            if (!Queue.offerUnsafe(subscriber.queue, message)) {
              overflowed++
              drop(subscriber, `fell more than ${options.capacity} batches behind`)
            }
          }
        }
        const count = Effect.suspend(() => {
          const dropped = overflowed
          overflowed = 0
          return Metric.update(subscribersMetric, subscribers.size).pipe(
            Effect.andThen(dropped === 0 ? Effect.void : Metric.update(droppedMetric, dropped))
          )
        })

        const run = Effect.gen(function*() {
          const current = yield* startReading(table.location.table, options.leases)
          reading = current
          yield* Effect.logInfo(`watch relay reading ${current.arn ?? "(no stream yet)"}`)
          yield* readStream(table.location.table, current.coordinator).pipe(
            Stream.runForEach((batch) =>
              Effect.gen(function*() {
                if (batch._tag === "Trimmed") {
                  broadcast({ _tag: "Trimmed", arn: batch.arn, shardId: batch.shardId })
                } else if (batch._tag === "Records") {
                  // The positions and what is relayed change together, so `Ready` splits them exactly.
                  const last = batch.records[batch.records.length - 1]
                  if (last !== undefined) current.positions[batch.shardId] = last.sequenceNumber
                  const records = batch.records.flatMap((record) =>
                    locate(table, record) === undefined
                      ? []
                      : [{ sequenceNumber: record.sequenceNumber, image: WatchRpc.encodeImage(record.newImage!) }]
                  )
                  if (records.length > 0 || batch.ended) {
                    broadcast({ _tag: "Records", arn: batch.arn, shardId: batch.shardId, records, ended: batch.ended })
                  }
                  if (batch.records.length === 0 || batch.ended) current.caughtUp(batch.shardId)
                }
                yield* batch.ack
                yield* count
              })
            )
          )
        }).pipe(
          Effect.provideService(StreamsApi, api),
          Effect.provideService(Dynamo, dynamo),
          Effect.tapCause((cause) =>
            Effect.gen(function*() {
              reading = undefined
              for (const subscriber of subscribers) drop(subscriber, "the worker's stream reader failed")
              // Interrupted: the worker is stopping, nothing to report.
              if (!Cause.hasInterruptsOnly(cause)) {
                yield* Effect.logWarning(`watch relay failed; starting again: ${Cause.pretty(cause)}`)
              }
            })
          ),
          Effect.retry(Schedule.spaced("2 seconds"))
        )
        yield* Effect.forkScoped(run)

        const subscribe = Stream.unwrap(Effect.gen(function*() {
          const queue = yield* Queue.bounded<WatchRpc.RelayMessage, WatchRpc.RelayRefused | Cause.Done>(
            options.capacity
          )
          const subscriber: Subscriber = { queue }
          yield* Effect.addFinalizer(() =>
            Effect.sync(() => subscribers.delete(subscriber)).pipe(Effect.andThen(count))
          )
          // A relay (re)starting has no reading yet: wait for it.
          while (reading === undefined) yield* Effect.sleep("100 millis")
          const current = reading
          yield* Deferred.await(current.live)
          const arn = current.arn
          // Without a stream there is nothing to relay, nor a position to give: the process waits for one itself.
          if (arn === undefined) return yield* new WatchRpc.RelayRefused({ reason: "the table has no stream" })
          yield* Effect.sync(() => {
            // In one step: records relayed before this are in the positions, every later one goes to the queue.
            Queue.offerUnsafe(queue, {
              _tag: "Ready",
              positions: { arn, shards: { ...current.positions } }
            })
            subscribers.add(subscriber)
          })
          yield* count
          return Stream.fromQueue(queue)
        }))

        const status = Effect.sync((): RelayStatus => ({
          subscribers: subscribers.size,
          live: reading !== undefined && Deferred.isDoneUnsafe(reading.live),
          positions: reading === undefined || reading.arn === undefined
            ? undefined
            : { arn: reading.arn, shards: { ...reading.positions } }
        }))
        return WatchRelay.of({ subscribe, status })
      })
    )
}

interface Reading {
  readonly arn: string | undefined
  readonly coordinator: ShardCoordinator<never>
  /** Per shard, the last record read (or the checkpoint it started after). */
  readonly positions: Record<string, string>
  /** Done once every shard open at the start was read to its newest record. */
  readonly live: Deferred.Deferred<void>
  readonly caughtUp: (shardId: string) => void
}

/**
 * Where the relay reads each shard: a shard listed at the start after the projection workers' checkpoint (from its
 * first record when there is none; not at all when they finished it), a later one from its first record. Never
 * "latest": every position the relay hands out is then a sequence number a reader can resume after.
 */
const startReading = (tableName: string, leases: LeaseLocation) =>
  Effect.gen(function*() {
    const api = yield* StreamsApi
    const arn = yield* api.latestStreamArn(tableName)
    const shards = arn === undefined ? [] : yield* listShards(arn)
    const positions: Record<string, string> = {}
    const finished = new Set<string>()
    for (const shard of shards) {
      const lease = yield* ProjectionLeases.read(leases, arn!, shard.shardId).pipe(
        Effect.orElseSucceed(() => undefined)
      )
      if (lease?.finished) finished.add(shard.shardId)
      else if (lease?.checkpoint !== undefined) positions[shard.shardId] = lease.checkpoint
    }
    const waiting = new Set(
      shards.filter((shard) => shard.endingSequenceNumber === undefined && !finished.has(shard.shardId))
        .map((shard) => shard.shardId)
    )
    const live = Deferred.makeUnsafe<void>()
    if (waiting.size === 0) Deferred.doneUnsafe(live, Effect.void)
    const coordinator: ShardCoordinator<never> = {
      acquire: (streamArn, shard) =>
        Effect.sync((): ShardPosition | undefined => {
          if (streamArn === arn && finished.has(shard.shardId)) return undefined
          const after = streamArn === arn ? positions[shard.shardId] : undefined
          return after === undefined ? { _tag: "TrimHorizon" } : { _tag: "After", sequenceNumber: after }
        }),
      isFinished: (streamArn, shardId) => Effect.succeed(streamArn === arn && finished.has(shardId)),
      checkpoint: () => Effect.void
    }
    const reading: Reading = {
      arn,
      coordinator,
      positions,
      live,
      caughtUp: (shardId) => {
        if (waiting.delete(shardId) && waiting.size === 0) Deferred.doneUnsafe(live, Effect.void)
      }
    }
    return reading
  })

/**
 * Where the relay listens (port 0: any free one), and with `tls` how it secures the channel (see `RelayTls`: TLS
 * with this certificate, and with a CA only clients holding a certificate it signed).
 */
export interface RelayListener {
  readonly host: string
  readonly port: number
  readonly tls?: RelayTls.RelayTls | undefined
}

/** The relay served as `WatchRpc.WatchRpcs` on a TCP (or TLS) socket at the listener's address. */
export const serve = (listener: RelayListener) =>
  Layer.unwrap(Effect.gen(function*() {
    const relay = yield* WatchRelay
    const location = (yield* EventTable).location
    const handlers = WatchRpc.WatchRpcs.toLayer({
      Watch: ({ namespace, table }) =>
        table === location.table && namespace === location.namespace
          ? relay.subscribe
          : Stream.fail(
            new WatchRpc.RelayRefused({
              reason:
                `it serves namespace ${location.namespace} of table ${location.table}, not ${namespace} of ${table}`
            })
          )
    })
    const { host, port, tls } = listener
    return RpcServer.layer(WatchRpc.WatchRpcs, { disableTracing: true }).pipe(
      Layer.provide(handlers),
      Layer.provide(RpcServer.layerProtocolSocketServer),
      Layer.provide(WatchRpc.serialization),
      Layer.provideMerge(announce(tls)),
      Layer.provideMerge(
        tls === undefined
          ? NodeSocketServer.layer({ host, port })
          : NodeSocketServer.layerTls({ ...RelayTls.serverOptions(tls), host, port })
      )
    )
  }))

const announce = (tls: RelayTls.RelayTls | undefined) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const address = (yield* SocketServer.SocketServer).address
    const where = address._tag === "UnixPathAddress" ? String(address) : NetAddress.formatInet(address)
    const security = tls === undefined
      ? "plain TCP"
      : tls.ca === undefined
      ? "TLS"
      : "TLS, client certificates required"
    yield* Effect.logInfo(`serving watches at ${where} (${security})`)
  }))

/** The listener could not be opened (port taken, address not local). */
export class RelayUnavailable extends Schema.TaggedError<RelayUnavailable>()("RelayUnavailable", {
  host: Schema.String,
  port: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `cannot serve watches on ${this.host}:${this.port}: ${this.reason}`
  }
}

/** The relay and its listener; the listener's address from `SocketServer` (`address`). */
export const layer = (listener: RelayListener, options: RelayOptions) =>
  serve(listener).pipe(
    Layer.provideMerge(WatchRelay.layer(options)),
    Layer.catchTag("SocketServerError", (error) =>
      Layer.effect(
        WatchRelay,
        Effect.fail(new RelayUnavailable({ host: listener.host, port: listener.port, reason: String(error.reason) }))
      ))
  )
