/**
 * Lease conditions on DynamoDB Local: a worker that read a lease as expired
 * cannot take it once its holder recorded the shard as finished in between,
 * and a finished lease is left for DynamoDB's TTL to remove after two days.
 */
import { DescribeTimeToLiveCommand, ScanCommand } from "@aws-sdk/client-dynamodb"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import * as ProjectionLeases from "../../src/infra/ProjectionLeases.ts"
import { freshTableName, makeClient } from "../support/TestStore.ts"

const client = makeClient()
const arn = "arn:aws:dynamodb:local:000000000000:table/t/stream/1"

afterAll(() => client.destroy())

describe("ProjectionLeases", () => {
  it.live("a take decided on a stale read loses to the holder finishing the shard", () =>
    Effect.gen(function*() {
      const location = { table: `${freshTableName("leases")}.projections`, group: "g" }
      yield* ProjectionLeases.ensureTable(location.table)
      yield* ProjectionLeases.register(location, arn, "shard-1", undefined)
      const free = yield* ProjectionLeases.read(location, arn, "shard-1")
      // A takes it with a lease that is already over (0 ms), so B may take it over.
      const a = yield* ProjectionLeases.take(location, arn, free, "A", 0, undefined)
      expect(a?.epoch).toBe(1)
      const seenByB = yield* ProjectionLeases.read(location, arn, "shard-1")
      // Between B's read and B's take, A applies the shard's last records.
      yield* ProjectionLeases.checkpoint(location, arn, a!, "A", "000123", true)
      expect(yield* ProjectionLeases.take(location, arn, seenByB, "B", 10_000, undefined)).toBeUndefined()
      const after = yield* ProjectionLeases.read(location, arn, "shard-1")
      expect([after.owner, after.epoch, after.finished, after.checkpoint]).toEqual(["A", 1, true, "000123"])
      // The finished lease carries a TTL two days out (past the stream's retention), and the table has TTL on.
      const raw = yield* Effect.promise(() =>
        client.send(
          new ScanCommand({
            TableName: location.table,
            FilterExpression: "attribute_exists(#ttl)",
            ExpressionAttributeNames: { "#ttl": "ttl" }
          })
        )
      )
      const ttls = (raw.Items ?? []).map((item) => Number(item["ttl"]?.N) * 1000 - Date.now())
      expect(ttls).toHaveLength(1)
      expect(Math.abs(ttls[0]! - ProjectionLeases.finishedLeaseMillis)).toBeLessThan(60_000)
      const ttl = yield* Effect.promise(() => client.send(new DescribeTimeToLiveCommand({ TableName: location.table })))
      expect(ttl.TimeToLiveDescription?.AttributeName).toBe("ttl")
    }).pipe(Effect.provideService(Dynamo, Dynamo.fromClient(client))))
})
