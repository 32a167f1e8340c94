/**
 * How `Dynamo` turns SDK outcomes into the store's: a single-item write
 * refused because a transaction holds the same item is tried again (the SDK
 * does not retry TransactionConflictException), and gives up with a
 * StorageFailure naming the conflict if it keeps happening.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Fiber, Option } from "effect"
import { TestClock } from "effect/testing"
import { randomBytes } from "node:crypto"
import { StorageFailure } from "../../src/domain/Errors.ts"
import { SigningSha256 } from "../../src/infra/crypto/SigningHash.ts"
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

describe("Dynamo's deadlines", () => {
  const timedOut = () => new StorageFailure({ operation: "append", reason: "no answer in time" })
  /** A request that never answers, recording whether it was aborted. */
  const hanging = () => {
    const seen = { aborted: false }
    const request = (_client: DynamoDBClient, signal: AbortSignal) =>
      new Promise<never>(() => signal.addEventListener("abort", () => (seen.aborted = true)))
    return { seen, request }
  }

  it.live("fail a request not answered by the deadline with the deadline's failure, and abort it", () =>
    Effect.gen(function*() {
      const dynamo = Dynamo.fromClient(unusedClient)
      const { seen, request } = hanging()
      const started = Date.now()
      const failure = yield* Effect.flip(
        dynamo.callConditional("PutItem", request, { at: started + 50, failure: timedOut })
      )
      expect(failure).toEqual(timedOut())
      expect(Date.now() - started).toBeGreaterThanOrEqual(45)
      expect(seen.aborted).toBe(true)
    }))

  it.live("fail at once a request whose deadline has passed, without sending it", () =>
    Effect.gen(function*() {
      const dynamo = Dynamo.fromClient(unusedClient)
      let sent = 0
      const failure = yield* Effect.flip(
        dynamo.call("GetItem", async () => ++sent, { at: Date.now() - 1, failure: timedOut })
      )
      expect(failure).toEqual(timedOut())
      expect(sent).toBe(0)
    }))

  it.effect("sleep on the fiber's clock when it is not the default one (a test's)", () =>
    Effect.gen(function*() {
      const dynamo = Dynamo.fromClient(unusedClient)
      const { seen, request } = hanging()
      const now = yield* Clock.currentTimeMillis
      const call = yield* Effect.forkChild(
        Effect.flip(dynamo.callConditional("PutItem", request, { at: now + 30_000, failure: timedOut }))
      )
      yield* TestClock.adjust("29 seconds")
      expect(seen.aborted).toBe(false)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(call)).toEqual(timedOut())
      expect(seen.aborted).toBe(true)
    }))

  it.live("leave an answered request alone: its value, no abort", () =>
    Effect.gen(function*() {
      const dynamo = Dynamo.fromClient(unusedClient)
      let aborted = false
      const value = yield* dynamo.call(
        "GetItem",
        async (_client, signal) => {
          signal.addEventListener("abort", () => (aborted = true))
          return "answered"
        },
        { at: Date.now() + 50, failure: timedOut }
      )
      expect(value).toBe("answered")
      yield* Effect.sleep("80 millis")
      expect(aborted).toBe(false)
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

  it.effect("is the decoder of the clients the store's layers make, which sign with SigningSha256", () =>
    Effect.gen(function*() {
      const config = yield* StoreConfig.fromProvider(ConfigProvider.fromUnknown({ storage: { region: "eu-west-1" } }))
      expect(clientConfig(config, Option.none()).base64Decoder).toBe(base64Decoder)
      expect(clientConfig(config, Option.none()).sha256).toBe(SigningSha256)
    }))
})
