/**
 * Where a watch's stream records come from: this process's own reading of the table's stream, or the worker's
 * relay (`WatchRpc`), which keeps the stream at two readers per shard however many processes watch. Either way
 * the watch (see `Watch`) gets the same batches and keeps the same per-shard positions; only the source changes.
 *
 * The relayed source falls back to reading the stream itself, from the positions reached, when the worker cannot
 * be reached, goes away or drops it as too slow, and goes back when the worker serves again. Going back, both read
 * until this process's own reading has passed, on every shard, what the worker had read when it took the
 * subscription (its `Ready` positions): the worker relays everything after, the own reading covered everything
 * before, and the watch drops the repeats (per-key order), so nothing is lost on either switch.
 */
import { Cause, Clock, Deferred, Duration, Effect, Fiber, Queue, Stream } from "effect"
import { EventTable } from "../../infra/EventTable.ts"
import type { RelayAddress } from "../../infra/streams/RelayAddress.ts"
import type { RelayTls } from "../../infra/streams/RelayTls.ts"
import { compareSequence } from "../../infra/streams/StreamEvents.ts"
import type { ShardCoordinator, StreamBatch } from "../../infra/streams/StreamReader.ts"
import { listShards, readStream } from "../../infra/streams/StreamReader.ts"
import { StreamsApi } from "../../infra/streams/StreamsApi.ts"
import type { ShardPosition } from "../../infra/streams/StreamsApi.ts"
import * as WatchRpc from "../../infra/streams/WatchRpc.ts"
import type { WatchError, WatchPosition } from "./Watch.ts"

/** A batch for the watch; `advances: false` when its records must not move the positions (see `relayed`). */
export type WatchBatch = StreamBatch<never> & { readonly advances?: boolean | undefined }

/** A source of stream batches, with the positions the watch keeps for it. */
export interface WatchSource {
  /** The batches, read while the stream runs. */
  readonly batches: Stream.Stream<WatchBatch, WatchError>
  /** Per shard, the last record the watch handled (mutated by the watch and the source). */
  readonly positions: Record<string, string>
  /** The stream the positions belong to (none while the table has no stream). */
  readonly arn: () => string | undefined
  /** Done once nothing from now on can be missed: the watch may announce `Init`. */
  readonly started: Deferred.Deferred<void>
}

/** Moves a shard's position forward to `sequenceNumber` (never back: two sources may overlap). */
export const advance = (positions: Record<string, string>, shardId: string, sequenceNumber: string): void => {
  const current = positions[shardId]
  if (current === undefined || compareSequence(sequenceNumber, current) > 0) positions[shardId] = sequenceNumber
}

/**
 * A reader positioned so that nothing after "now" (or after `resumeFrom`) is missed: open shards from the latest
 * record (or after the resumed position), shards created later from their first record. `started` completes once
 * every open shard has its iterator. The positions are kept in `positions`.
 */
const liveCoordinator = (resumeFrom: WatchPosition | undefined, positions: Record<string, string>) =>
  Effect.gen(function*() {
    const table = (yield* EventTable).location.table
    const api = yield* StreamsApi
    const arn = yield* api.latestStreamArn(table)
    const initial = arn === undefined ? [] : yield* listShards(arn)
    const open = new Set(
      initial.filter((shard) => shard.endingSequenceNumber === undefined).map((shard) => shard.shardId)
    )
    const closedAtStart = new Set(initial.filter((shard) => !open.has(shard.shardId)).map((shard) => shard.shardId))
    const waiting = new Set(open)
    const started = yield* Deferred.make<void>()
    if (waiting.size === 0) yield* Deferred.succeed(started, undefined)
    for (const shardId of Object.keys(positions)) delete positions[shardId]
    if (resumeFrom?.arn === arn) Object.assign(positions, resumeFrom?.shards)
    // Resuming, a closed shard was already read through only if a resumed shard descends from it; any other may hold unseen events.
    const parents = new Map(initial.map((shard) => [shard.shardId, shard.parentShardId] as const))
    const passed = new Set<string>()
    for (const shardId of Object.keys(positions)) {
      for (
        let parent = parents.get(shardId);
        parent !== undefined && !passed.has(parent);
        parent = parents.get(parent)
      ) passed.add(parent)
    }
    // Shards read from their newest record: what came before was before `Init`, no position of this reader covers it.
    const fromLatest = new Set<string>()
    const finishedAtStart = (shardId: string) =>
      closedAtStart.has(shardId) && positions[shardId] === undefined &&
      (resumeFrom === undefined || passed.has(shardId))
    const coordinator: ShardCoordinator<never> = {
      acquire: (_arn, shard) =>
        Effect.sync((): ShardPosition | undefined => {
          const resumed = positions[shard.shardId]
          if (resumed !== undefined) return { _tag: "After", sequenceNumber: resumed }
          if (_arn === arn && finishedAtStart(shard.shardId)) return undefined
          if (open.has(shard.shardId) && _arn === arn && resumeFrom === undefined) {
            fromLatest.add(shard.shardId)
            return { _tag: "Latest" }
          }
          return { _tag: "TrimHorizon" }
        }),
      isFinished: (_arn, shardId) => Effect.succeed(_arn === arn && finishedAtStart(shardId)),
      checkpoint: (_arn, shardId, sequenceNumber) =>
        Effect.sync(() => {
          if (sequenceNumber !== undefined) advance(positions, shardId, sequenceNumber)
        })
    }
    const onStarted = (shardId: string) =>
      Effect.suspend(
        () => (waiting.delete(shardId) && waiting.size === 0 ? Deferred.succeed(started, undefined) : Effect.void)
      )
    return { coordinator, started, arn, onStarted, finishedAtStart, fromLatest }
  })

/** This process's own reading of the stream, keeping its positions in `positions`. */
const ownReading = (
  table: EventTable["Service"],
  api: StreamsApi["Service"],
  resumeFrom: WatchPosition | undefined,
  positions: Record<string, string>
) =>
  liveCoordinator(resumeFrom, positions).pipe(
    Effect.map((live) => ({
      ...live,
      batches: readStream(table.location.table, live.coordinator).pipe(
        Stream.tap((batch) => batch._tag === "Started" ? live.onStarted(batch.shardId) : Effect.void),
        Stream.filter((batch) => batch._tag !== "Started"),
        Stream.provideService(StreamsApi, api)
      )
    })),
    Effect.provideService(StreamsApi, api),
    Effect.provideService(EventTable, table)
  )

/** The watch reads the stream itself (after `resumeFrom`, else from now). */
export const own = (resumeFrom: WatchPosition | undefined) =>
  Effect.gen(function*() {
    const table = yield* EventTable
    const api = yield* StreamsApi
    const positions: Record<string, string> = {}
    const reading = yield* ownReading(table, api, resumeFrom, positions)
    const source: WatchSource = {
      batches: reading.batches,
      positions,
      arn: () => reading.arn,
      started: reading.started
    }
    return source
  })

/** How long this process's own reader needs to bring a record the stream already shows: a few polls. */
const quietMillis = 2_000

/** Where the worker serves watches, and how soon to try it again after it could not serve. */
export interface RelayTarget {
  readonly address: RelayAddress
  /** TLS for the channel (see `RelayTls`): the worker's certificate checked against `ca`, `cert` presented. */
  readonly tls?: RelayTls | undefined
  /** Pause between attempts to reach the worker while reading the stream itself (default 5 s). */
  readonly retry?: Duration.Input | undefined
  /** How long the worker may take to say `Ready` (its reader catching up after a start) before it counts as gone. */
  readonly readyTimeout?: Duration.Input | undefined
}

/**
 * The worker's relay, with this process's own reading as the fallback (see the module's doc). Starting from
 * `resumeFrom`, the own reading catches up from there while the relay is joined.
 */
export const relayed = (target: RelayTarget, resumeFrom: WatchPosition | undefined) =>
  Effect.gen(function*() {
    const table = yield* EventTable
    const api = yield* StreamsApi
    const positions: Record<string, string> = {}
    let arn: string | undefined
    const started = yield* Deferred.make<void>()
    const retry = Duration.fromInputUnsafe(target.retry ?? "5 seconds")
    const readyTimeout = Duration.fromInputUnsafe(target.readyTimeout ?? "30 seconds")

    const batches = Stream.unwrap(Effect.gen(function*() {
      const scope = yield* Effect.scope
      const out = yield* Queue.bounded<WatchBatch, WatchError | Cause.Done>(16)
      interface Own {
        readonly fiber: Fiber.Fiber<unknown>
        readonly finished: (shardId: string) => boolean
        readonly fromLatest: ReadonlySet<string>
      }
      let ownReader: Own | undefined
      /** The worker's positions when it took the subscription, while the own reading has yet to pass them. */
      let joining: WatchRpc.RelayMessage & { readonly _tag: "Ready" } | undefined
      let joinedAt = 0

      // Called after the watch handled a batch of the own reading: stop it once it passed the worker's `Ready`.
      const maybeStopOwn = Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const reader = ownReader
        const ready = joining
        if (reader === undefined || ready === undefined) return Effect.void
        const settled = now - joinedAt >= quietMillis
        const passed = Object.entries(ready.positions.shards).every(([shardId, sequenceNumber]) => {
          const reached = positions[shardId]
          if (reached !== undefined) return compareSequence(reached, sequenceNumber) >= 0
          // Read from its newest record and nothing since: a record the worker read before `Ready` that came after
          // this reader's start would have reached it within a few polls; one from before it preceded `Init`.
          return reader.finished(shardId) || (reader.fromLatest.has(shardId) && settled)
        })
        if (!passed) return Effect.void
        ownReader = undefined
        joining = undefined
        // The relay covers the rest: a watch whose own reading stopped before it started may announce `Init` now.
        Deferred.doneUnsafe(started, Effect.void)
        return Effect.logInfo("watch: back on the worker's relay; this process stops reading the stream").pipe(
          Effect.andThen(Fiber.interrupt(reader.fiber)),
          Effect.forkIn(scope),
          Effect.asVoid
        )
      })

      // Checks once the quiet period since joining has passed by the clock `maybeStopOwn` reads; a timer can wake a
      // little early, and nothing else checks again on a quiet stream, so it sleeps again for what is left.
      const stopOwnOnceSettled: Effect.Effect<void> = Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (joining === undefined) return Effect.void
        const left = joinedAt + quietMillis - now
        return left > 0 ? Effect.andThen(Effect.sleep(left), stopOwnOnceSettled) : maybeStopOwn
      })

      const startOwn = (from: WatchPosition | undefined) =>
        Effect.gen(function*() {
          const reading = yield* ownReading(table, api, from, positions)
          arn = reading.arn
          const fiber = yield* reading.batches.pipe(
            Stream.runForEach((batch) =>
              Queue.offer(out, { ...batch, ack: batch.ack.pipe(Effect.andThen(maybeStopOwn)) })
            ),
            Effect.catchCause((cause) => Queue.failCause(out, cause)),
            Effect.forkIn(scope)
          )
          ownReader = { fiber, finished: reading.finishedAtStart, fromLatest: reading.fromLatest }
          yield* Deferred.await(reading.started).pipe(
            Effect.andThen(Deferred.succeed(started, undefined)),
            Effect.forkIn(scope)
          )
        })

      const relayMessage = (message: WatchRpc.RelayMessage) =>
        Effect.gen(function*() {
          switch (message._tag) {
            case "Ready": {
              if (ownReader === undefined) {
                // Fresh: the worker's positions are this watch's from now on.
                Object.assign(positions, message.positions.shards)
                arn = message.positions.arn
                yield* Deferred.succeed(started, undefined)
                return
              }
              if (arn !== undefined && message.positions.arn !== arn) {
                return yield* Effect.fail(`the worker reads stream ${message.positions.arn}, this watch ${arn}`)
              }
              joining = message
              joinedAt = yield* Clock.currentTimeMillis
              // A quiet shard brings no batch to check on: check again once it had time to.
              yield* Effect.forkIn(stopOwnOnceSettled, scope)
              return yield* maybeStopOwn
            }
            case "Records":
              return yield* Queue.offer(out, {
                _tag: "Records",
                arn: message.arn,
                shardId: message.shardId,
                records: message.records.map(WatchRpc.toStreamRecord),
                ended: message.ended,
                reading: 0,
                ack: Effect.void,
                // While the own reading catches up, its positions are the ones every delivered event is covered by.
                advances: ownReader === undefined
              })
            case "Trimmed":
              return yield* Queue.offer(out, {
                _tag: "Trimmed",
                arn: message.arn,
                shardId: message.shardId,
                reading: 0,
                ack: Effect.void
              })
          }
        })

      // A relay that accepts the call but never says `Ready` (or stops answering pings) is treated as gone.
      let ready = false
      const readyWithin = Effect.sleep(readyTimeout).pipe(
        Effect.andThen(Effect.suspend(() => ready ? Effect.never : Effect.fail("no Ready from the worker in time")))
      )
      const session = Effect.scoped(Effect.gen(function*() {
        ready = false
        const client = yield* WatchRpc.client(target.address, target.tls)
        yield* client.Watch({ table: table.location.table, namespace: table.location.namespace }).pipe(
          Stream.runForEach((message) => {
            if (message._tag === "Ready") ready = true
            return relayMessage(message)
          }),
          Effect.raceFirst(readyWithin)
        )
      })).pipe(
        Effect.catchCause((cause) =>
          Effect.logWarning(
            `watch: the worker's relay at ${target.address.host}:${target.address.port} does not serve (${
              Cause.pretty(cause).split("\n")[0]
            })${
              // A TLS 1.3 server refuses a client certificate after the handshake: the client sees a closed socket.
              target.tls === undefined
                ? ""
                : "; over TLS, a closed connection is also how a refused certificate shows"}`
          )
        ),
        Effect.ensuring(Effect.sync(() => {
          joining = undefined
        }))
      )

      const supervise = Effect.gen(function*() {
        if (resumeFrom !== undefined) yield* startOwn(resumeFrom)
        while (true) {
          yield* session
          if (ownReader === undefined) {
            const from = arn === undefined ? resumeFrom : { arn, shards: { ...positions } }
            yield* Effect.logInfo("watch: reading the stream in this process until the worker serves again")
            yield* startOwn(from)
          }
          yield* Effect.sleep(retry)
        }
      }).pipe(Effect.catchCause((cause) => Queue.failCause(out, cause)))
      yield* Effect.forkIn(supervise, scope)
      return Stream.fromQueue(out)
    }))

    const source: WatchSource = { batches, positions, arn: () => arn, started }
    return source
  })
