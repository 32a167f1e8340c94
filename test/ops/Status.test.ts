/**
 * `status` against DynamoDB Local: a missing table, a table without stream and TTL, and a store with a worker's
 * lease whose checkpoint is behind the stream (the lag measured from the records after it).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ProjectionLeases from "../../src/infra/ProjectionLeases.ts"
import { StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import * as Status from "../../src/programs/ops/Status.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import { freshTableName, makeClient, openStore, provisionTable } from "../support/TestStore.ts"
import { createBareEventTable, opsLayer } from "./support.ts"

const client = makeClient()
afterAll(() => client.destroy())
const bytes = (text: string) => new TextEncoder().encode(text)

describe("Status", () => {
  it.live("a missing table is reported as missing, naming provision", () =>
    Effect.gen(function*() {
      const report = yield* Status.status(Target.make(freshTableName("status-missing"), "ns"))
      expect(report.table.exists).toBe(false)
      expect(report.stream.enabled).toBe(false)
      expect(report.workers.leaseTableExists).toBe(false)
      expect(Status.render(report)).toContain("missing (create it with `dynastate provision`)")
      expect(JSON.parse(JSON.stringify(report))).toEqual(report)
    }).pipe(Effect.provide(opsLayer(client))))

  it.live("a table without stream and TTL says so", () =>
    Effect.gen(function*() {
      const table = freshTableName("status-bare")
      yield* Effect.promise(() => createBareEventTable(client, table))
      const report = yield* Status.status(Target.make(table, "ns"))
      expect(report.table).toMatchObject({ exists: true, status: "ACTIVE", billingMode: "pay_per_request" })
      expect(report.stream).toMatchObject({ enabled: false, arn: undefined })
      expect(report.ttl).toEqual({ status: "DISABLED", attribute: undefined, ok: false })
      const text = Status.render(report)
      expect(text).toContain("stream     disabled")
      expect(text).toContain("expected ENABLED on ttl")
    }).pipe(Effect.provide(opsLayer(client))))

  it.live("leases, checkpoints and the lag behind them", () =>
    Effect.gen(function*() {
      const location = yield* provisionTable(client, freshTableName("status-store"))
      const store = yield* openStore(location, { client })
      for (let i = 0; i < 3; i++) yield* store.put({ key: `/status/k${i}`, value: bytes(`v${i}`) })
      const target = Target.make(location.table, location.namespace)
      const leases = { table: target.leaseTable, group: target.leaseGroup }
      yield* ProjectionLeases.ensureTable(leases.table)

      const before = yield* Status.status(target)
      expect(before.stream.enabled).toBe(true)
      expect(before.stream.viewType).toBe("NEW_IMAGE")
      expect(before.ttl?.ok).toBe(true)
      const arn = before.stream.arn!
      expect(before.stream.shards?.open).toBeGreaterThanOrEqual(1)
      expect(before.workers.unleasedShards.length).toBe(before.stream.shards?.open)

      // A worker that took the shard and applied the first record only.
      const shardId = before.workers.unleasedShards[0]!
      const streams = yield* StreamsApi
      const iterator = yield* streams.getShardIterator(arn, shardId, { _tag: "TrimHorizon" })
      const page = yield* streams.getRecords(shardId, iterator!)
      expect(page.records.length).toBeGreaterThanOrEqual(3)
      yield* ProjectionLeases.register(leases, arn, shardId, undefined)
      const lease = yield* ProjectionLeases.take(
        leases,
        arn,
        yield* ProjectionLeases.read(leases, arn, shardId),
        "worker-a",
        60_000
      )
      yield* ProjectionLeases.checkpoint(leases, arn, lease!, "worker-a", page.records[0]!.sequenceNumber, false)
      yield* ProjectionLeases.announce(leases, "worker-a", 60_000, true)

      const behind = yield* Status.status(target)
      expect(behind.workers.live.map((worker) => worker.owner)).toEqual(["worker-a"])
      const shard = behind.workers.shards.find((entry) => entry.shardId === shardId)!
      expect(shard).toMatchObject({ owner: "worker-a", epoch: 1, leaseLive: true, currentStream: true })
      expect(shard.lag?.pending).toBe(page.records.length - 1)
      expect(shard.lag?.millis).toBeGreaterThanOrEqual(0)
      expect(behind.workers.unleasedShards).not.toContain(shardId)

      // Applied up to the last record: at the tip.
      const last = page.records[page.records.length - 1]!.sequenceNumber
      yield* ProjectionLeases.checkpoint(leases, arn, lease!, "worker-a", last, false)
      const caughtUp = yield* Status.status(target)
      expect(caughtUp.workers.shards.find((entry) => entry.shardId === shardId)?.lag).toMatchObject({
        millis: 0,
        pending: 0
      })
      const text = Status.render(caughtUp)
      expect(text).toContain("1 live in group default: worker-a")
      expect(text).toContain(`${shardId}: worker-a epoch 1, checkpoint ${last}, at the tip`)
      expect(text).toContain("quarantine")
      expect(JSON.parse(JSON.stringify(caughtUp))).toEqual(caughtUp)
    }).pipe(Effect.scoped, Effect.provide(opsLayer(client))), 60_000)
})
