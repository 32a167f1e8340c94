/**
 * Side tables on DynamoDB Local: several processes making the same side table at once (two workers starting
 * together, each creating its lease and view tables) all succeed, and the table ends with TTL on.
 */
import { DescribeTimeToLiveCommand } from "@aws-sdk/client-dynamodb"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import * as SideTable from "../../src/infra/SideTable.ts"
import { freshTableName, makeClient } from "../support/TestStore.ts"

const client = makeClient()

afterAll(() => client.destroy())

describe("SideTable.ensure", () => {
  it.live("concurrent creators of one table with TTL all succeed", () =>
    Effect.gen(function*() {
      for (let round = 0; round < 3; round++) {
        const table = freshTableName("side")
        // Each creator has its own client, as separate processes would: no request is shared between them.
        const creators = Array.from({ length: 4 }, () => {
          const own = makeClient()
          return SideTable.ensure(table, "pk", "sk", "ttl").pipe(
            Effect.provideService(Dynamo, Dynamo.fromClient(own)),
            Effect.ensuring(Effect.sync(() => own.destroy()))
          )
        })
        const outcomes = yield* Effect.all(creators.map(Effect.exit), { concurrency: "unbounded" })
        expect(outcomes.map((exit) => exit._tag)).toEqual(["Success", "Success", "Success", "Success"])
        const ttl = yield* Effect.promise(() => client.send(new DescribeTimeToLiveCommand({ TableName: table })))
        expect(ttl.TimeToLiveDescription).toMatchObject({ TimeToLiveStatus: "ENABLED", AttributeName: "ttl" })
      }
    }))
})
