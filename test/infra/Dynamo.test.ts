/**
 * How `Dynamo` turns SDK outcomes into the store's: a single-item write
 * refused because a transaction holds the same item is tried again (the SDK
 * does not retry TransactionConflictException), and gives up with a
 * StorageFailure naming the conflict if it keeps happening.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Dynamo } from "../../src/infra/Dynamo.ts"

const conflict = () =>
  Object.assign(new Error("Transaction is ongoing for the item"), { name: "TransactionConflictException" })
const unusedClient = {} as DynamoDBClient

describe("Dynamo", () => {
  it.live("retries a write that met a transaction in flight, then succeeds", () =>
    Effect.gen(function*() {
      const dynamo = Dynamo.fromClient(unusedClient)
      let attempts = 0
      const result = yield* dynamo.callConditional("PutItem", async () => {
        attempts++
        if (attempts < 3) throw conflict()
        return "written"
      })
      expect(result).toBe("written")
      expect(attempts).toBe(3)
    }))

  it.live("gives up after a bounded number of conflicts with a StorageFailure naming it", () =>
    Effect.gen(function*() {
      const dynamo = Dynamo.fromClient(unusedClient)
      let attempts = 0
      const failure = yield* Effect.flip(dynamo.call("PutItem", async () => {
        attempts++
        throw conflict()
      }))
      expect(failure._tag).toBe("StorageFailure")
      expect(failure.message + JSON.stringify(failure)).toContain("TransactionConflictException")
      expect(attempts).toBe(7)
    }))

  it.live("does not retry other failures", () =>
    Effect.gen(function*() {
      const dynamo = Dynamo.fromClient(unusedClient)
      let attempts = 0
      const failure = yield* Effect.flip(dynamo.callConditional("PutItem", async () => {
        attempts++
        throw Object.assign(new Error("condition"), { name: "ConditionalCheckFailedException" })
      }))
      expect(failure._tag).toBe("ConditionalCheckFailed")
      expect(attempts).toBe(1)
    }))
})
