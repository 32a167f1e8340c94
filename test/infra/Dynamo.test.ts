/**
 * How `Dynamo` turns SDK outcomes into the store's: a single-item write
 * refused because a transaction holds the same item is tried again (the SDK
 * does not retry TransactionConflictException), and gives up with a
 * StorageFailure naming the conflict if it keeps happening.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option } from "effect"
import { randomBytes } from "node:crypto"
import { base64Decoder, Dynamo } from "../../src/infra/Dynamo.ts"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import { clientConfig } from "../../src/programs/app/StoreLive.ts"

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

describe("Dynamo.base64Decoder", () => {
  it("decodes what the SDK's decoder decodes, as a plain Uint8Array view", () => {
    for (const length of [0, 1, 2, 3, 22, 255, 354, 4096]) {
      const bytes = new Uint8Array(randomBytes(length))
      const decoded = base64Decoder(Buffer.from(bytes).toString("base64"))
      expect(decoded).toEqual(bytes)
      expect(decoded.constructor).toBe(Uint8Array)
    }
  })

  it("refuses what is not base64 (the SDK's decoder refuses it too), rather than skip the characters", () => {
    for (const bad of ["ab$c", "a===", "abc", "ab=c", "YWJj\nZGVm", "ab-_"]) {
      expect(() => base64Decoder(bad), bad).toThrow(TypeError)
    }
  })

  it.effect("is the decoder of the clients the store's layers make", () =>
    Effect.gen(function*() {
      const config = yield* StoreConfig.fromProvider(ConfigProvider.fromUnknown({ storage: { region: "eu-west-1" } }))
      expect(clientConfig(config, Option.none()).base64Decoder).toBe(base64Decoder)
    }))
})
