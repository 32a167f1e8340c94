/**
 * Checkpoints of `ShardLeasing` on DynamoDB Local: a batch's progress is written at once only when none was
 * recorded for a heartbeat period; otherwise the next renewal records it in its own write, and a graceful shutdown
 * records what is still pending with the release, so the next owner applies nothing twice.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import * as ProjectionLeases from "../../src/infra/ProjectionLeases.ts"
import * as ShardLeasing from "../../src/programs/worker/ShardLeasing.ts"
import { freshTableName, makeClient } from "../support/TestStore.ts"
import { eventually } from "./support.ts"

const client = makeClient()
const arn = "arn:aws:dynamodb:local:000000000000:table/t/stream/1"
const shard = { shardId: "shard-1", parentShardId: undefined, endingSequenceNumber: undefined }

afterAll(() => client.destroy())

/** Lease-table writes by kind, counted through SDK middleware. */
const countWrites = () => {
  const writes = { checkpoint: 0, renewal: 0 }
  client.middlewareStack.add(
    (next) => (args) => {
      const update = (args.input as { UpdateExpression?: string }).UpdateExpression ?? ""
      if (update.includes("checkpoint = :checkpoint") && !update.includes("expiresAt")) writes.checkpoint++
      else if (update.startsWith("SET expiresAt = :expiresAt")) writes.renewal++
      return next(args)
    },
    { step: "initialize", name: "leaseWriteCounter" }
  )
  return writes
}

describe("ShardLeasing checkpoints", () => {
  it.live(
    "progress is recorded once per heartbeat period, by the renewal, and a shutdown records the rest",
    () =>
      Effect.gen(function*() {
        const writes = countWrites()
        const location = { table: `${freshTableName("leasing")}.projections`, group: "g" }
        const leaseMillis = 3000 // a heartbeat every second
        const scope = yield* Scope.make()
        const leasing = yield* ShardLeasing.make({ owner: "A", leases: location, leaseMillis, strandedMillis: 0 }).pipe(
          Scope.provide(scope)
        )
        expect(yield* leasing.coordinator.acquire(arn, shard, 1)).toEqual({ _tag: "TrimHorizon" })
        const stored = () => ProjectionLeases.read(location, arn, shard.shardId)

        // The first batch is recorded at once; the next ones, within the period, wait for the renewal.
        yield* leasing.coordinator.checkpoint(arn, shard.shardId, "0001", false, 1)
        expect((yield* stored()).checkpoint).toBe("0001")
        for (const sequenceNumber of ["0002", "0003", "0004"]) {
          yield* leasing.coordinator.checkpoint(arn, shard.shardId, sequenceNumber, false, 1)
        }
        expect(writes.checkpoint).toBe(1)
        expect((yield* stored()).checkpoint).toBe("0001")
        const renewals = writes.renewal
        // A renewal comes within a heartbeat (a second); on a loaded machine its answer can come later than that.
        yield* eventually(
          "a renewal records 0004",
          Effect.flatMap(stored(), (lease) => Effect.sync(() => expect(lease.checkpoint).toBe("0004"))),
          10_000
        )
        expect(writes.renewal).toBeGreaterThan(renewals)
        expect(writes.checkpoint).toBe(1)

        // Pending at shutdown: the release carries it.
        yield* leasing.coordinator.checkpoint(arn, shard.shardId, "0005", false, 1)
        yield* leasing.shutdown
        const released = yield* stored()
        expect([released.checkpoint, released.expiresAt]).toEqual(["0005", 0])
        expect(writes.checkpoint).toBe(1)
        yield* Scope.close(scope, Exit.void)
      }).pipe(Effect.provideService(Dynamo, Dynamo.fromClient(client))),
    30_000
  )
})
