/**
 * Helpers of the projection worker tests: a fresh table per test, workers in
 * scopes of their own that can be stopped gracefully or "killed" (every
 * DynamoDB and Streams call of the process fails from then on, its projections
 * stop taking effect, and it never gets to release its leases), recording
 * projections, raw views of the event table and the lease table, a seeded
 * workload, and bounded polling.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { PutItemCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { expect } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Scope } from "effect"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import type { ConditionalAction } from "../../src/domain/AtomicWrite.ts"
import { StorageFailure } from "../../src/domain/Errors.ts"
import type { Event } from "../../src/domain/Event.ts"
import * as Key from "../../src/domain/Key.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { isFreedMarker } from "../../src/infra/HistoryRecord.ts"
import { areaPartition, livePartitions } from "../../src/infra/PartitionKeys.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import type { StreamsError } from "../../src/infra/streams/StreamsApi.ts"
import { workerLayer } from "../../src/programs/app/WorkerLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import { defaultStoreOptions } from "../../src/programs/store/Store.ts"
import type { StoreOptions } from "../../src/programs/store/Store.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import type { Retention } from "../../src/programs/worker/projections/HistoryProjection.ts"
import { defaultWorkerOptions, ProjectionWorker } from "../../src/programs/worker/ProjectionWorker.ts"
import type { WorkerOptions, WorkerStatus } from "../../src/programs/worker/ProjectionWorker.ts"
import { rawPartition } from "../support/RawTable.ts"
import {
  eventTableLayer,
  freshTableName,
  makeClient,
  provisionTable,
  streamsConfig,
  testLayoutLease
} from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
export const bytes = (value: string): Uint8Array => encoder.encode(value)
export const text = (value: Uint8Array): string => decoder.decode(value)

/** A table of its own for one test, and a raw client on it. */
export interface Env {
  readonly client: DynamoDBClient
  readonly location: TestTable
  readonly leaseTable: string
}

/**
 * Provisions a fresh table (with its stream) for the calling test; the client is destroyed with the scope.
 *
 * One item outside any namespace is written first. DynamoDB Local numbers stream records with one
 * counter for all tables, and an iterator taken on a still empty shard (after other tables' streams
 * moved that counter on) fails with TrimmedDataAccessException when the shard's first record arrives:
 * readers would report a trimmed shard that real DynamoDB never would (watches then fail with WatchGap).
 */
export const freshEnv = (label: string): Effect.Effect<Env, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* Effect.acquireRelease(Effect.sync(makeClient), (c) => Effect.sync(() => c.destroy()))
    const location = yield* provisionTable(client, freshTableName(label))
    yield* Effect.promise(() =>
      client.send(
        new PutItemCommand({
          TableName: location.table,
          Item: { pk: { S: "warm-up" }, sk: { B: new Uint8Array([0]) } }
        })
      )
    )
    return { client, location, leaseTable: `${location.table}.projections` }
  })

/** Whether a worker process is still alive; a dead one has no effect on the world any more. */
export interface Gate {
  dead: boolean
}

/** Runs after each response a worker's DynamoDB client receives: the milliseconds to hold the response back (0 to only observe). */
export type ResponseDelay = (command: string, input: unknown) => number

const withKillSwitch = <C extends DynamoDBClient | DynamoDBStreamsClient>(
  client: C,
  gate: Gate,
  delay?: ResponseDelay
): C => {
  const stack = client.middlewareStack as unknown as {
    add: (middleware: unknown, options: { step: string; name: string }) => void
  }
  stack.add(
    (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
    async (args: { input: unknown }) => {
      if (gate.dead) throw Object.assign(new Error("the worker process was killed"), { name: "WorkerKilled" })
      const result = await next(args)
      const millis = delay?.(String(context.commandName), args.input) ?? 0
      if (millis > 0) await new Promise((resolve) => setTimeout(resolve, millis))
      return result
    },
    { step: "initialize", name: "testKillSwitch" }
  )
  return client
}

/** Options of a test worker. */
export interface TestWorkerOptions {
  readonly group: string
  readonly projections?: ReadonlyArray<Projection.Projection<unknown>> | undefined
  readonly retention?: Retention | undefined
  /**
   * How long compaction lets events settle (default 0: at once, so tests need not wait; the write fence
   * then protects nothing, which these tests do not need: test/store/concurrency/writeFence.test.ts tests it).
   */
  readonly settleMillis?: number | undefined
  readonly leaseMillis?: number | undefined
  readonly maxApplyAttempts?: number | undefined
  readonly resyncMillis?: number | undefined
  readonly responseDelay?: ResponseDelay | undefined
  /** The Streams API the worker reads through instead of DynamoDB Local's (e.g. a scripted stream with several shards). */
  readonly streams?: StreamsApi["Service"] | undefined
  /** Options of the worker's own store instance (e.g. its sealed prefixes). */
  readonly storeOptions?: Partial<StoreOptions> | undefined
}

/** A Streams API whose calls fail once the worker process was killed, as its own clients' do. */
const gatedStreams = (api: StreamsApi["Service"], gate: Gate): StreamsApi["Service"] => {
  const guard = <A>(call: Effect.Effect<A, StreamsError>): Effect.Effect<A, StreamsError> =>
    Effect.suspend(() => (gate.dead
      ? Effect.fail(new StorageFailure({ operation: "Streams", reason: "the worker process was killed" }))
      : call)
    )
  return StreamsApi.of({
    latestStreamArn: (table) => guard(api.latestStreamArn(table)),
    describeStream: (arn, start) => guard(api.describeStream(arn, start)),
    getShardIterator: (arn, shardId, position) => guard(api.getShardIterator(arn, shardId, position)),
    getRecords: (shardId, iterator) => guard(api.getRecords(shardId, iterator))
  })
}

/** A running worker process. */
export interface WorkerHandle {
  readonly owner: string
  readonly gate: Gate
  readonly status: Effect.Effect<WorkerStatus>
  /** Graceful shutdown: waits until the worker finished its batch and released its leases. */
  readonly stop: Effect.Effect<void>
  /** A crash: from now on nothing the process does reaches DynamoDB or the projections' storage. */
  readonly kill: Effect.Effect<void>
}

/** The worker options the tests use: short leases and fast polling. */
export const testWorkerOptions = (env: Env, options: TestWorkerOptions): WorkerOptions => ({
  ...defaultWorkerOptions(env.location.table),
  leases: { table: env.leaseTable, group: options.group },
  leaseMillis: options.leaseMillis ?? 1500,
  maxApplyAttempts: options.maxApplyAttempts ?? 5,
  reader: { polling: { idleMillis: 20, maxBackoffMillis: 200 }, resyncMillis: options.resyncMillis ?? 300, buffer: 16 }
})

/**
 * Starts a worker (the built-in history and expiry projections plus `projections`)
 * with its own clients, store instance and scope, as a separate process would.
 */
export const startWorker = (env: Env, options: TestWorkerOptions): Effect.Effect<WorkerHandle, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const gate: Gate = { dead: false }
    const dynamo = withKillSwitch(makeClient(), gate, options.responseDelay)
    const streams = withKillSwitch(new DynamoDBStreamsClient(streamsConfig()), gate)
    const guarded = (options.projections ?? []).map((projection) =>
      Projection.make({
        ...projection,
        apply: (event: Event) => Effect.suspend(() => (gate.dead ? Effect.void : projection.apply(event)))
      })
    )
    const services = Store.layer({ ...defaultStoreOptions, layoutLease: testLayoutLease, ...options.storeOptions })
      .pipe(
        Layer.provideMerge(
          Layer.succeed(
            StreamsApi,
            options.streams === undefined ? fromClients(dynamo, streams) : gatedStreams(options.streams, gate)
          )
        ),
        Layer.provideMerge(eventTableLayer(env.location, { client: dynamo }))
      )
    const layer = workerLayer(
      testWorkerOptions(env, options),
      { retention: options.retention ?? { _tag: "Forever" }, settleMillis: options.settleMillis ?? 0 },
      guarded
    ).pipe(Layer.provide(services))
    const scope = yield* Scope.make()
    const destroy = Effect.sync(() => {
      dynamo.destroy()
      streams.destroy()
    })
    // Whatever happens in the test, the worker ends with it.
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void).pipe(Effect.andThen(destroy)))
    const context = yield* Layer.buildWithScope(layer, scope)
    const worker = Context.get(context, ProjectionWorker)
    return {
      owner: worker.owner,
      gate,
      status: worker.status,
      stop: Scope.close(scope, Exit.void).pipe(Effect.andThen(destroy)),
      kill: Effect.gen(function*() {
        gate.dead = true
        // The dead process's fibers wind down in the background; none of their calls gets through.
        yield* Effect.forkDetach(Scope.close(scope, Exit.interrupt(0)).pipe(Effect.andThen(destroy)))
      })
    } satisfies WorkerHandle
  })

/** Polls `check` (which may fail or throw) until it succeeds; dies with the last failure after `timeoutMillis`. */
export const eventually = <A, E, R>(
  label: string,
  check: Effect.Effect<A, E, R>,
  timeoutMillis = 20_000,
  intervalMillis = 100
): Effect.Effect<A, never, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (true) {
      const exit = yield* Effect.exit(check)
      if (Exit.isSuccess(exit)) return exit.value
      if (Date.now() > deadline) {
        return yield* Effect.die(
          new Error(`${label}: not within ${timeoutMillis} ms; last failure: ${Cause.pretty(exit.cause)}`)
        )
      }
      yield* Effect.sleep(intervalMillis)
    }
  })

/** An applied event as a projection recorded it, and which worker applied it. */
export interface Applied {
  readonly event: Event
  readonly by: string
  readonly at: number
}

/** A projection that records every event it is given, in order (its "storage", shared by all workers). */
export const recorder = (name: string, prefixes: ReadonlyArray<string> = [], by = "any") => {
  const log: Array<Applied> = []
  const make = (worker: string) =>
    Projection.make({
      name,
      prefixes,
      apply: (event: Event) => Effect.sync(() => void log.push({ event, by: worker, at: Date.now() }))
    })
  return { log, projection: make(by), forWorker: make }
}

/** The applied seqs of each key, in the order they were applied. */
export const seqsByKey = (log: ReadonlyArray<Applied>): Map<string, Array<number>> => {
  const out = new Map<string, Array<number>>()
  for (const { event } of log) {
    const seqs = out.get(event.key) ?? []
    seqs.push(event.seq)
    out.set(event.key, seqs)
  }
  return out
}

/** The state a projection's log folds to: per key the value of its newest applied event, or undefined when deleted/expired. */
export const fold = (log: ReadonlyArray<Applied>): Map<string, { seq: number; value: string | undefined }> => {
  const out = new Map<string, { seq: number; value: string | undefined }>()
  for (const { event } of log) {
    const current = out.get(event.key)
    if (current !== undefined && current.seq >= event.seq) continue // idempotent per (key, seq)
    const value = (event.op === "put" || event.op === "keep-alive") && event.value ? text(event.value) : undefined
    out.set(event.key, { seq: event.seq, value })
  }
  return out
}

/** One event item as stored, not decrypted. */
export interface RawEvent {
  readonly key: string
  readonly seq: number
  readonly op: string
  readonly revision: string
}

const queryAll = (
  client: DynamoDBClient,
  table: string,
  pk: string
): Effect.Effect<ReadonlyArray<Record<string, AttributeValue>>> => Effect.promise(() => rawPartition(client, table, pk))

const rawOf = (item: Record<string, AttributeValue>): RawEvent => {
  const { key, seq } = SortKey.decode(item[Attr.sort]!.B!)
  return { key, seq, op: item[Attr.op]!.S!, revision: item[Attr.revision]!.S! }
}

/** Every item of each of the location's live partitions (or the area beside each). */
const allPartitions = (env: Env, area?: "history") =>
  Effect.map(
    Effect.forEach(livePartitions(env.location), (live) =>
      queryAll(env.client, env.location.table, area === undefined ? live : areaPartition(live, area))),
    (pages) =>
      pages.flat()
  )

/** The events in the live range (raw Query on pk = namespace, or each live partition), ordered by key then seq. */
export const liveEvents = (env: Env) =>
  Effect.map(
    allPartitions(env),
    (items) => items.map(rawOf).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.seq - b.seq))
  )

/** The events in the history area (raw Query on pk = `<namespace>\0history`, or each), ordered by key then seq. */
export const archivedEvents = (env: Env) =>
  Effect.map(
    allPartitions(env, "history"),
    // A marker for a freed seq 1 (retention none) holds no event.
    (items) =>
      items.filter((item) => !isFreedMarker(item)).map(rawOf).sort((
        a,
        b
      ) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.seq - b.seq))
  )

/**
 * Every event of the namespace, live or archived, each (key, seq) once. The live range is read first:
 * compaction copies an event into the history area before it removes it from the live range, so an
 * event moved between the two reads is seen twice (and deduplicated) rather than not at all.
 */
export const allEvents = (env: Env) =>
  Effect.gen(function*() {
    const live = yield* liveEvents(env)
    const archived = yield* archivedEvents(env)
    const byId = new Map<string, RawEvent>()
    for (const event of [...archived, ...live]) byId.set(`${event.key}\u0000${event.seq}`, event)
    return [...byId.values()]
  })

/** The newest seq of every key in the log. */
export const newestSeqs = (events: ReadonlyArray<RawEvent>): Map<string, number> => {
  const out = new Map<string, number>()
  for (const event of events) out.set(event.key, Math.max(out.get(event.key) ?? 0, event.seq))
  return out
}

/** A shard lease as stored in the lease table. */
export interface RawLease {
  readonly shard: string
  readonly owner: string | undefined
  readonly epoch: number
  readonly expiresAt: number
  readonly checkpoint: string | undefined
  readonly finished: boolean
}

/** The lease items of a group. */
export const leases = (env: Env, group: string): Effect.Effect<ReadonlyArray<RawLease>> =>
  Effect.map(queryAll(env.client, env.leaseTable, group), (items) =>
    items.map((item) => ({
      shard: item.sk!.S!,
      owner: item.owner?.S,
      epoch: Number(item.epoch?.N ?? 0),
      expiresAt: Number(item.expiresAt?.N ?? 0),
      checkpoint: item.checkpoint?.S,
      finished: item.finished?.BOOL ?? false
    })))

/** A worker's announcement as stored in the lease table (its own partition, `<group>#workers`). */
export interface RawAnnouncement {
  readonly owner: string
  readonly expiresAt: number
}

/** The worker announcements of a group, expired ones included. */
export const announcements = (env: Env, group: string): Effect.Effect<ReadonlyArray<RawAnnouncement>> =>
  Effect.map(
    queryAll(env.client, env.leaseTable, `${group}#workers`),
    (items) =>
      items.map((item) => ({ owner: item.sk!.S!.replace(/^worker#/, ""), expiresAt: Number(item.expiresAt?.N ?? 0) }))
  )

/** The one unfinished lease of a group (DynamoDB Local streams have one open shard per table). */
export const openLease = (env: Env, group: string) =>
  Effect.flatMap(leases(env, group), (all) => {
    const open = all.filter((lease) => !lease.finished)
    return open.length === 1
      ? Effect.succeed(open[0]!)
      : Effect.fail(`expected one open lease, found ${JSON.stringify(all)}`)
  })

/** A small deterministic PRNG (mulberry32), so a failing workload can be replayed. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return { next, int: (n: number) => Math.floor(next() * n) }
}

/**
 * `writes` store operations over `keys` (puts, deletes, atomic writes of 2 or 3 keys),
 * chosen by a seeded PRNG, one at a time; `onStep` runs after each (to inject faults).
 */
export const workload = <R = never>(
  store: Store["Service"],
  keys: ReadonlyArray<string>,
  writes: number,
  seed: number,
  onStep: (step: number) => Effect.Effect<void, unknown, R> = () => Effect.void
) =>
  Effect.gen(function*() {
    const random = prng(seed)
    for (let step = 0; step < writes; step++) {
      const roll = random.next()
      const key = keys[random.int(keys.length)]!
      const value = bytes(`${key}@${step}`)
      if (roll < 0.6) {
        yield* store.put({ key, value })
      } else if (roll < 0.8) {
        yield* store.delete(key).pipe(Effect.catchTag("NotFound", () => Effect.void))
      } else {
        const chosen = new Set<string>([key])
        const size = 2 + random.int(2)
        while (chosen.size < size) chosen.add(keys[random.int(keys.length)]!)
        const actions: Array<ConditionalAction> = [...chosen].map((k, i) => ({
          key: k,
          condition: Condition.whatever,
          action: i === 1 && random.next() < 0.4 ? Action.delete : Action.put(bytes(`${k}@${step}`))
        }))
        yield* store.atomicWrite(actions)
      }
      yield* onStep(step)
    }
  })

const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

/**
 * Waits (bounded) until a recording projection has seen the newest event of every key under `prefix`,
 * then checks the at-least-once, per-key-order contract against the log and the store:
 * - nothing missing: every key's applied seqs cover 1..n;
 * - in order: seq s is first applied only after s - 1 was (replays after a restart may repeat earlier seqs);
 * - each worker process applied each key's events in strictly increasing seq order (no duplicate within a process);
 * - the fold of the applied events (idempotent per (key, seq)) is the store's current state.
 * Returns how many events were applied more than once.
 */
export const expectComplete = (
  env: Env,
  store: Store["Service"],
  log: ReadonlyArray<Applied>,
  prefix: string,
  timeoutMillis = 30_000
) =>
  Effect.gen(function*() {
    const newest = newestSeqs((yield* allEvents(env)).filter((event) => event.key.startsWith(prefix)))
    yield* eventually(
      "the projection caught up",
      Effect.sync(() => {
        const applied = seqsByKey(log)
        for (const [key, n] of newest) expect(Math.max(0, ...(applied.get(key) ?? [])), key).toBe(n)
      }),
      timeoutMillis
    )
    const applied = seqsByKey(log)
    expect([...applied.keys()].sort()).toEqual([...newest.keys()].sort())
    for (const [key, n] of newest) expect([...new Set(applied.get(key))], key).toEqual(upTo(n))
    const violations: Array<string> = []
    const last = new Map<string, number>()
    for (const { event, by } of log) {
      const slot = `${by} ${event.key}`
      if ((last.get(slot) ?? 0) >= event.seq) violations.push(`${slot}: ${event.seq} after ${last.get(slot)}`)
      last.set(slot, event.seq)
    }
    expect(violations).toEqual([])
    const state = yield* store.getRange(prefix, Key.rangeEnd(prefix))
    const folded = [...fold(log)].filter(([, entry]) => entry.value !== undefined).map((
      [key, entry]
    ) => [key, entry.value])
    expect(folded.sort()).toEqual(state.map((item) => [item.key, text(item.value)]).sort())
    return { newest, duplicates: log.length - [...newest.values()].reduce((sum, n) => sum + n, 0) }
  })
