/**
 * Workers of one group share a stream's shards fairly: each announces itself,
 * holds at most ceil(shards / live workers), and hands surplus shards off
 * between batches, so the next owner resumes right after the released
 * checkpoint and the old one applies nothing more of the shard.
 *
 * DynamoDB Local gives a table one shard, so the sharing itself is shown over
 * a scripted stream of four shards carrying the real, encrypted event records
 * of a table (read back from DynamoDB Local's stream), with real workers,
 * lease table and projections; the single-shard case runs on DynamoDB Local
 * as it is. The reader's side of a hand-off (stop a shard it was told to let
 * go, read it again later from the checkpoint) is checked on its own.
 */
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Stream } from "effect"
import type { Event } from "../../src/domain/Event.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import type { ShardCoordinator } from "../../src/infra/streams/StreamReader.ts"
import { listShards, readStream } from "../../src/infra/streams/StreamReader.ts"
import type { StreamRecord } from "../../src/infra/streams/StreamsApi.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import type { WorkerStatus } from "../../src/programs/worker/ProjectionWorker.ts"
import { fast, labels, makeCoordinator } from "../streams/Harness.ts"
import { labelOf, makeScriptedStreams } from "../streams/ScriptedStreams.ts"
import { openStore, streamsConfig } from "../support/TestStore.ts"
import type { Applied, Env, RawLease, WorkerHandle } from "./support.ts"
import {
  announcements,
  eventually,
  expectComplete,
  freshEnv,
  leases,
  openLease,
  recorder,
  startWorker,
  workload
} from "./support.ts"

const prefix = "/b/"
const keys = Array.from({ length: 12 }, (_, i) => `${prefix}k${i}`)

/** Polls a worker's status until `check` passes on it. */
const statusOf = (label: string, worker: WorkerHandle, check: (status: WorkerStatus) => void, timeoutMillis = 20_000) =>
  eventually(label, Effect.flatMap(worker.status, (status) => Effect.sync(() => check(status))), timeoutMillis, 50)

/** The shard leases of a group by shard, without the announcements. */
const leasesByShard = (env: Env, group: string) =>
  Effect.map(
    leases(env, group),
    (all) => new Map(all.filter((lease) => !lease.finished).map((lease) => [lease.shard, lease] as const))
  )

/** For each key, the workers that applied it, in the order they first did: a hand-off that went back and forth shows a worker twice. */
const appliersByKey = (log: ReadonlyArray<Applied>) => {
  const out = new Map<string, Array<string>>()
  for (const { event, by } of log) {
    const runs = out.get(event.key) ?? []
    if (runs[runs.length - 1] !== by) runs.push(by)
    out.set(event.key, runs)
  }
  return out
}

/** At least `count` event records of the table's stream on DynamoDB Local, in stream order. */
const streamEvents = (env: Env, count: number) =>
  Effect.gen(function*() {
    const streams = yield* Effect.acquireRelease(Effect.sync(() => new DynamoDBStreamsClient(streamsConfig())), (c) =>
      Effect.sync(() => c.destroy()))
    const real = fromClients(env.client, streams)
    const arn = (yield* real.latestStreamArn(env.location.table))!
    const isEvent = (r: StreamRecord) =>
      r.newImage?.[Attr.partition]?.S === env.location.namespace && r.newImage[Attr.sort]?.B !== undefined
    let events: Array<StreamRecord> = []
    for (let attempt = 0; attempt < 50 && events.length < count; attempt++) {
      const records: Array<StreamRecord> = []
      for (const shard of yield* listShards(arn).pipe(Effect.provideService(StreamsApi, real))) {
        let iterator = yield* real.getShardIterator(arn, shard.shardId, { _tag: "TrimHorizon" })
        for (let pages = 0; iterator !== undefined && pages < 50; pages++) {
          const page = yield* real.getRecords(shard.shardId, iterator)
          records.push(...page.records)
          if (page.records.length === 0) {
            break
          }
          iterator = page.nextIterator
        }
      }
      events = records.filter(isEvent)
      if (events.length < count) {
        yield* Effect.sleep(100)
      }
    }
    return events
  })

/** The event key of a stream record. */
const keyOf = (record: StreamRecord) => SortKey.decode(record.keys[Attr.sort]!.B!).key

describe("balance", () => {
  it.live(
    "one shard, two workers: B registers, A keeps the shard, and A's graceful stop hands it to B at once, in order and without loss",
    () =>
      Effect.gen(function*() {
        const group = "balance-pair"
        const leaseMillis = 3000
        const env = yield* freshEnv(group)
        const store = yield* openStore(env.location, { client: env.client })
        const seen = recorder("balance", [prefix])
        const a = yield* startWorker(env, { group, projections: [seen.forWorker("A")], leaseMillis })
        yield* workload(store, keys, 40, 31)
        yield* expectComplete(env, store, seen.log, prefix)
        const held = yield* openLease(env, group)
        expect(held.owner).toBe(a.owner)

        const b = yield* startWorker(env, { group, projections: [seen.forWorker("B")], leaseMillis })
        // B announced itself, and both count two live workers: a fair share of one shard each.
        const announced = yield* announcements(env, group)
        expect(announced.map((announcement) => announcement.owner).sort()).toEqual([a.owner, b.owner].sort())
        expect(announced.every((announcement) => announcement.expiresAt > Date.now())).toBe(true)
        yield* statusOf("B sees two workers", b, (status) => {
          expect({ owned: status.ownedShards, share: status.fairShare, workers: status.liveWorkers }).toEqual({
            owned: 0,
            share: 1,
            workers: 2
          })
        })
        yield* statusOf("A sees two workers", a, (status) => {
          expect({ owned: status.ownedShards, share: status.fairShare, workers: status.liveWorkers }).toEqual({
            owned: 1,
            share: 1,
            workers: 2
          })
        })

        // Nobody flaps: over more than two heartbeats (a hand-off needs a surplus seen at two in a row), with events flowing.
        yield* workload(store, keys, 40, 32)
        yield* Effect.sleep(leaseMillis)
        yield* expectComplete(env, store, seen.log, prefix)
        const kept = yield* openLease(env, group)
        expect({ owner: kept.owner, epoch: kept.epoch }).toEqual({ owner: a.owner, epoch: held.epoch })
        expect(seen.log.filter((applied) => applied.by === "B")).toEqual([])

        // A graceful stop: A withdraws and releases; B takes the shard long before A's last renewal would have run out.
        const beforeStop = yield* openLease(env, group)
        yield* a.stop
        expect((yield* announcements(env, group)).map((announcement) => announcement.owner)).toEqual([b.owner])
        const taken = yield* eventually(
          "B holds the lease",
          Effect.gen(function*() {
            const lease = yield* openLease(env, group)
            expect(lease.owner).toBe(b.owner)
            return { lease, at: Date.now() }
          }),
          10_000,
          20
        )
        expect(taken.at).toBeLessThan(beforeStop.expiresAt)
        expect(taken.lease.epoch).toBe(held.epoch + 1)

        yield* workload(store, keys, 40, 33)
        const { duplicates } = yield* expectComplete(env, store, seen.log, prefix)
        // B resumed right after A's last checkpoint: not one event applied twice.
        expect(duplicates).toBe(0)
        expect(seen.log.some((applied) => applied.by === "B")).toBe(true)
        for (const [key, runs] of appliersByKey(seen.log)) {
          expect({ key, runs: runs.join(">") }).toMatchObject({ key, runs: expect.stringMatching(/^(A|B|A>B)$/) })
        }
        yield* statusOf("B alone", b, (status) => {
          expect({ owned: status.ownedShards, share: status.fairShare, workers: status.liveWorkers }).toEqual({
            owned: 1,
            share: 1,
            workers: 1
          })
        })
      }),
    90_000
  )

  it.live(
    "four shards: a second worker gets half through hand-offs, a third finds nothing to take, and the first's stop hands its half to it",
    () =>
      Effect.gen(function*() {
        const group = "balance-shards"
        const leaseMillis = 3000
        const env = yield* freshEnv(group)
        const store = yield* openStore(env.location, { client: env.client })
        yield* workload(store, keys, 150, 41)
        const events = yield* streamEvents(env, 150)
        const script = makeScriptedStreams({ table: env.location.table })
        const shardIds = ["s0", "s1", "s2", "s3"]
        for (const shardId of shardIds) script.addShard(shardId)
        // A key lives on one shard, so its events stay in order across the scripted stream.
        const shardOfKey = (key: string) =>
          shardIds[[...key].reduce((sum, c) => sum + c.charCodeAt(0), 0) % shardIds.length]!
        const third = Math.floor(events.length / 3)
        const append = (from: number, to: number) => {
          for (const record of events.slice(from, to)) script.appendRecords(shardOfKey(keyOf(record)), [record])
        }
        append(0, third)
        const seen = recorder("balance", [prefix])
        const options = (name: string) => ({
          group,
          projections: [seen.forWorker(name)],
          leaseMillis,
          resyncMillis: 200,
          streams: script.api
        })

        const a = yield* startWorker(env, options("A"))
        yield* statusOf("A alone holds all four", a, (status) =>
          expect([status.ownedShards, status.fairShare]).toEqual([4, 4]))
        const first = yield* leasesByShard(env, group)
        expect([...first.values()].map((lease) => [lease.owner, lease.epoch])).toEqual(shardIds.map(() => [a.owner, 1]))

        const b = yield* startWorker(env, options("B"))
        yield* statusOf("A handed two shards to B", b, (status) =>
          expect([status.ownedShards, status.fairShare, status.liveWorkers]).toEqual([2, 2, 2]))
        yield* statusOf("A kept two", a, (status) =>
          expect([status.ownedShards, status.fairShare]).toEqual([2, 2]))
        const shared = yield* leasesByShard(env, group)
        const epochs = (all: ReadonlyMap<string, RawLease>, owner: string) =>
          [...all.values()].filter((lease) =>
            lease.owner === owner
          ).map((lease) =>
            lease.epoch
          )
        // The shards that changed hands went up one epoch; the ones A kept did not move.
        expect({ a: epochs(shared, a.owner), b: epochs(shared, b.owner) }).toEqual({ a: [1, 1], b: [2, 2] })
        append(third, 2 * third)

        const c = yield* startWorker(env, options("C"))
        yield* statusOf("C sees three workers and a share of two", c, (status) =>
          expect([status.ownedShards, status.fairShare, status.liveWorkers]).toEqual([0, 2, 3]))
        // ceil(4 / 3) = 2: A and B are at their share, so nothing moves, however long they run.
        yield* Effect.sleep(leaseMillis)
        const steady = yield* leasesByShard(env, group)
        expect([...steady].map(([shard, lease]) => [shard, lease.owner, lease.epoch]))
          .toEqual([...shared].map(([shard, lease]) => [shard, lease.owner, lease.epoch]))
        expect((yield* c.status).ownedShards).toBe(0)

        const fromA = [...steady.values()].filter((lease) =>
          lease.owner === a.owner
        )
        const expiring = Math.min(...fromA.map((lease) =>
          lease.expiresAt
        ))
        yield* a.stop
        yield* statusOf("C took A's two shards", c, (status) =>
          expect([status.ownedShards, status.fairShare, status.liveWorkers]).toEqual([2, 2, 2]))
        // Released, not expired: C had them before A's last renewals would have run out.
        expect(Date.now()).toBeLessThan(expiring)
        const after = yield* leasesByShard(env, group)
        for (const lease of fromA) {
          expect([after.get(lease.shard)!.owner, after.get(lease.shard)!.epoch]).toEqual([c.owner, 2])
        }
        expect((yield* b.status).ownedShards).toBe(2)

        append(2 * third, events.length)
        const { duplicates } = yield* expectComplete(env, store, seen.log, prefix)
        expect(duplicates).toBe(0)
        expect(
          new Set(seen.log.map((applied) =>
            applied.by
          ))
        ).toEqual(new Set(["A", "B", "C"]))
        // Each key went from worker to worker at most once per hand-off, never back.
        for (const [key, runs] of appliersByKey(seen.log)) {
          expect({ key, distinct: new Set(runs).size }).toEqual({ key, distinct: runs.length })
        }
      }),
    120_000
  )

  it.live(
    "a hand-off waits for the batch in flight, and the shard's batches still buffered are dropped: the next owner applies them, once",
    () =>
      Effect.gen(function*() {
        const group = "balance-inflight"
        const leaseMillis = 3000
        const env = yield* freshEnv(group)
        const store = yield* openStore(env.location, { client: env.client })
        yield* workload(store, keys, 120, 51)
        const events = yield* streamEvents(env, 120)
        // Two records a page: A's buffer fills with many small batches of both shards while it is held up.
        const script = makeScriptedStreams({ table: env.location.table, recordsPerPage: 2 })
        script.addShard("s0")
        script.addShard("s1")
        const shardOfKey = (key: string) => ([...key].reduce((sum, c) => sum + c.charCodeAt(0), 0) % 2 === 0
          ? "s0"
          : "s1")
        for (const record of events) script.appendRecords(shardOfKey(keyOf(record)), [record])

        const seen = recorder("balance", [prefix])
        const entered = yield* Deferred.make<void>()
        const proceed = yield* Deferred.make<void>()
        let releasedAt = Number.POSITIVE_INFINITY
        // A is held up on its first event of shard s1, the shard it will hand off (its highest id).
        const heldUp = Projection.make({
          name: "balance",
          prefixes: [prefix],
          apply: (event: Event) =>
            Effect.gen(function*() {
              seen.log.push({ event, by: "A", at: Date.now() })
              if (shardOfKey(event.key) === "s1" && !(yield* Deferred.isDone(entered))) {
                yield* Deferred.succeed(entered, undefined)
                yield* Deferred.await(proceed)
              }
            })
        })
        const options = { group, leaseMillis, resyncMillis: 200, streams: script.api }
        const a = yield* startWorker(env, { ...options, projections: [heldUp] })
        yield* Deferred.await(entered).pipe(Effect.timeout("20 seconds"))
        yield* statusOf("A holds both", a, (status) => expect(status.ownedShards).toBe(2))

        const b = yield* startWorker(env, { ...options, projections: [seen.forWorker("B")] })
        // Two heartbeats of A: its surplus is confirmed and the hand-off of s1 waits for the batch A is in.
        yield* Effect.sleep(leaseMillis)
        const during = yield* leasesByShard(env, group)
        expect([...during.values()].map((lease) => lease.owner)).toEqual([a.owner, a.owner])
        expect(seen.log.filter((applied) => applied.by === "B")).toEqual([])
        releasedAt = Date.now()
        yield* Deferred.succeed(proceed, undefined)

        yield* statusOf("B took s1", b, (status) => expect([status.ownedShards, status.fairShare]).toEqual([1, 1]))
        yield* statusOf("A kept s0", a, (status) => expect(status.ownedShards).toBe(1))
        const { duplicates } = yield* expectComplete(env, store, seen.log, prefix)
        expect(duplicates).toBe(0)
        const s1Keys = new Set(keys.filter((key) => shardOfKey(key) === "s1"))
        // What A applied of s1 after the hold-up ended is what remained of the batch it was in; the rest is B's.
        const lastOfA = Math.max(
          ...seen.log.filter((applied) => applied.by === "A" && s1Keys.has(applied.event.key)).map((applied) =>
            applied.at
          )
        )
        const firstOfB = Math.min(...seen.log.filter((applied) => applied.by === "B").map((applied) => applied.at))
        expect(lastOfA).toBeLessThanOrEqual(firstOfB)
        expect(
          seen.log.filter((applied) => applied.by === "A" && s1Keys.has(applied.event.key) && applied.at > releasedAt)
            .length
        ).toBeLessThanOrEqual(2)
        for (const [key, runs] of appliersByKey(seen.log)) {
          expect({ key, runs: runs.join(">") }).toMatchObject({ key, runs: expect.stringMatching(/^(A|B|A>B)$/) })
        }
      }),
    90_000
  )
})

describe("stream reader: letting a shard go", () => {
  it.live("a shard the coordinator stops keeping is no longer read; kept again, it is read from its checkpoint under a new reading", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams({ recordsPerPage: 2 })
      script.addShard("A")
      script.addShard("B")
      script.append("A", ...labels("a", 3))
      script.append("B", ...labels("b", 3))
      const base = makeCoordinator()
      const letGo = new Set<string>()
      const readings: Array<{ readonly shardId: string; readonly reading: number }> = []
      const coordinator: ShardCoordinator<never> = {
        ...base.coordinator,
        acquire: (arn, shard, reading) =>
          letGo.has(shard.shardId)
            ? Effect.succeed(undefined)
            : Effect.sync(() => readings.push({ shardId: shard.shardId, reading })).pipe(
              Effect.andThen(base.coordinator.acquire(arn, shard, reading))
            ),
        keeps: (_arn, shardId) => !letGo.has(shardId)
      }
      const log: Array<{ readonly label: string; readonly reading: number }> = []
      yield* readStream("scripted-table", coordinator, fast).pipe(
        Stream.runForEach((batch) =>
          batch.ack.pipe(
            Effect.andThen(Effect.sync(() => {
              if (batch._tag === "Records") {
                for (const record of batch.records) log.push({ label: labelOf(record), reading: batch.reading })
              }
            })),
            Effect.uninterruptible
          )
        ),
        Effect.provideService(StreamsApi, script.api),
        Effect.forkScoped
      )
      const has = (label: string) => log.some((entry) => entry.label === label)
      yield* eventually("a3 and b3 delivered", Effect.sync(() => expect(has("a3") && has("b3")).toBe(true)), 10_000, 5)

      letGo.add("A")
      const pollsOfA = () => script.count("getRecords", (call) => call.shardId === "A")
      // Within a discovery period the reader stops polling A (it polls a quiet shard every 10 ms), while B goes on.
      yield* eventually(
        "A no longer polled",
        Effect.gen(function*() {
          const before = pollsOfA()
          yield* Effect.sleep(3 * fast.resyncMillis)
          expect(pollsOfA()).toBe(before)
        }),
        10_000,
        0
      )
      script.append("A", "a4", "a5")
      script.append("B", "b4")
      yield* eventually("b4 delivered", Effect.sync(() => expect(has("b4")).toBe(true)), 10_000, 5)
      yield* Effect.sleep(2 * fast.resyncMillis)
      expect(has("a4")).toBe(false)

      letGo.delete("A")
      yield* eventually("a5 delivered", Effect.sync(() => expect(has("a5")).toBe(true)), 10_000, 5)
      const ofA = readings.filter((entry) => entry.shardId === "A").map((entry) => entry.reading)
      expect(ofA).toHaveLength(2)
      expect(ofA[1]!).toBeGreaterThan(ofA[0]!)
      // From the checkpoint: nothing of A twice, nothing missing, the rest under the new reading.
      expect(log.filter((entry) => entry.label.startsWith("a"))).toEqual([
        ...labels("a", 3).map((label) => ({ label, reading: ofA[0]! })),
        { label: "a4", reading: ofA[1]! },
        { label: "a5", reading: ofA[1]! }
      ])
      expect(log.filter((entry) => entry.label.startsWith("b")).map((entry) => entry.label)).toEqual(labels("b", 4))
    }))
})
